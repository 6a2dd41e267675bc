//! Dry-run routes: the policy's verdict is recorded, counted and reported, and the
//! request goes upstream anyway.

use crate::harness::upstream::CREATED_BODY;
use crate::harness::{expect_status, Behaviour, Proxy, RouteSpec, Setup, Upstream};
use anyhow::{ensure, Context, Result};
use serde_json::json;

#[tokio::test]
async fn dry_run_route_forwards_a_denied_request_and_records_why() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let routes = vec![
        RouteSpec::new("crm", "/crm", upstream.url()),
        RouteSpec::new("shadow", "/shadow", upstream.url()).dry_run(),
    ];
    let proxy = Proxy::start(&Setup::new(routes)).await?;
    let body = json!({"subject": "refund", "forbidden": true});

    // Enforced, the request is refused; in dry-run it goes through.
    let enforced = proxy.post_json("/crm/v1/tickets", &[], &body).await?;
    expect_status(&enforced, 403).context("enforce route")?;
    upstream
        .nothing_received()
        .context("the enforced denial reached the upstream")?;

    let reply = proxy.post_json("/shadow/v1/tickets", &[], &body).await?;
    expect_status(&reply, 201).context("dry-run")?;
    ensure!(reply.body == CREATED_BODY.as_bytes());
    ensure!(reply.header("lastmile-decision").as_deref() == Some("dry_run_denied"));
    let sent = upstream.only_request()?;
    ensure!(sent.path == "/v1/tickets", "upstream got {sent:?}");
    ensure!(sent.body == body.to_string().as_bytes());

    let trace_id = reply.header("lastmile-trace-id").unwrap_or_default();
    let record = proxy.trace_record(&trace_id).await?;
    ensure!(record["outcome"] == "dry_run_denied", "trace: {record}");
    ensure!(
        record["route"] == "shadow" && record["mode"] == "dry-run",
        "trace: {record}"
    );
    ensure!(record["status"] == 201, "trace: {record}");
    ensure!(record["decision"]["verdict"] == "deny", "trace: {record}");
    let reasons = record["decision"]["deny"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        reasons
            == vec![
                json!({"code": "forbidden_field", "message": "the field 'forbidden' may not be sent"})
            ],
        "trace deny reasons: {reasons:?}"
    );

    let metrics = proxy.metrics().await?;
    let count = metrics.get(
        "lastmile_requests_total",
        &[("outcome", "dry_run_denied"), ("route", "shadow")],
    );
    ensure!(
        count == Some(1.0),
        "dry_run_denied count {count:?} in\n{}",
        metrics.text
    );
    Ok(())
}

#[tokio::test]
async fn dry_run_route_forwards_despite_a_policy_error_without_obligations() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Proxy::start(&Setup::new(vec![RouteSpec::new(
        "shadow",
        "/shadow",
        upstream.url(),
    )
    .dry_run()]))
    .await?;

    let reply = proxy
        .post_json("/shadow/v1/tickets", &[], &json!({"set_host": true}))
        .await?;

    expect_status(&reply, 201).context("dry-run")?;
    ensure!(reply.header("lastmile-decision").as_deref() == Some("dry_run_policy_error"));
    let sent = upstream.only_request()?;
    // No part of a malformed decision is applied.
    ensure!(
        sent.header("host") == Some(upstream.addr.to_string()),
        "Host: {:?}",
        sent.header("host")
    );
    let record = proxy
        .trace_record(&reply.header("lastmile-trace-id").unwrap_or_default())
        .await?;
    ensure!(
        record["outcome"] == "dry_run_policy_error" && record["error"]["code"] == "policy_error",
        "{record}"
    );
    let metrics = proxy.metrics().await?;
    let count = metrics.get(
        "lastmile_requests_total",
        &[("outcome", "dry_run_policy_error"), ("route", "shadow")],
    );
    ensure!(count == Some(1.0), "{}", metrics.text);
    Ok(())
}
