//! What the agent sees when the upstream fails: its errors pass through untouched, and
//! lastmile's own refusals say whether the request may have taken effect. Never a 2xx.

use crate::harness::upstream::dead_url;
use crate::harness::{assert_refusal, expect_status, Behaviour, Proxy, RouteSpec, Setup, Upstream};
use anyhow::{ensure, Result};
use serde_json::json;
use std::time::Duration;

const EXPLODED: &str = "{\"error\":\"upstream exploded\",\"id\":42}";

#[tokio::test]
async fn upstream_error_status_and_body_pass_through_unchanged() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Reply {
        status: 500,
        body: EXPLODED,
    })
    .await?;
    let proxy = Proxy::start(&Setup::new(vec![RouteSpec::new(
        "crm",
        "/crm",
        upstream.url(),
    )]))
    .await?;

    let reply = proxy
        .post_json("/crm/v1/tickets", &[], &json!({"subject": "x"}))
        .await?;

    expect_status(&reply, 500)?;
    ensure!(
        reply.body == EXPLODED.as_bytes(),
        "body changed: {:?}",
        reply.text()
    );
    ensure!(reply.header("x-upstream").as_deref() == Some("e2e"));
    ensure!(reply.header("lastmile-decision").as_deref() == Some("allowed"));
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn unreachable_upstream_is_502_upstream_unreachable() -> Result<()> {
    let proxy = Proxy::start(&Setup::new(vec![RouteSpec::new(
        "crm",
        "/crm",
        dead_url()?,
    )]))
    .await?;

    let reply = proxy
        .post_json("/crm/v1/tickets", &[], &json!({"subject": "x"}))
        .await?;

    let body = assert_refusal(&reply, 502, "upstream_unreachable")?;
    // Nothing was sent, so the outcome is known: it did not happen.
    ensure!(body["error"].get("outcome").is_none(), "{body}");
    Ok(())
}

#[tokio::test]
async fn slow_upstream_is_504_with_an_unknown_outcome() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_secs(30))).await?;
    let proxy = Proxy::start(&Setup::new(vec![RouteSpec::new(
        "crm",
        "/crm",
        upstream.url(),
    )
    .timeout_ms(300)]))
    .await?;

    let reply = proxy
        .post_json("/crm/v1/tickets", &[], &json!({"subject": "x"}))
        .await?;

    let body = assert_refusal(&reply, 504, "upstream_timeout")?;
    ensure!(body["error"]["outcome"] == "unknown", "{body}");
    // It was sent: that is exactly why the outcome is unknown.
    upstream.only_request()?;
    Ok(())
}
