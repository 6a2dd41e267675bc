//! Requests the policy allows reach the upstream once, rewritten the way the upstream
//! must see them: the route's credential, the policy's obligations, trace context.

use crate::harness::upstream::CREATED_BODY;
use crate::harness::{crm_proxy, expect_status, jwt};
use crate::harness::{INBOUND_PARENT_ID, INBOUND_TRACE_ID, UPSTREAM_TOKEN};
use anyhow::{ensure, Result};
use bytes::Bytes;
use http::Method;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test]
async fn allowed_post_is_forwarded_once_with_the_route_credential_and_trace_context() -> Result<()>
{
    let (upstream, proxy) = crm_proxy(|route| route.require_user()).await?;
    let token = jwt::token("alice", "crm.read crm.write")?;
    let traceparent = format!("00-{INBOUND_TRACE_ID}-{INBOUND_PARENT_ID}-01");
    let body = r#"{"account":"acme","amount":120.5,"memo":"order \u00e9 7"}"#;

    let reply = proxy
        .request(
            Method::POST,
            "/crm/v1/invoices?draft=true",
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer agent-own-key-must-not-travel"),
                ("x-lastmile-user", &token),
                ("traceparent", &traceparent),
                ("x-request-tag", "e2e-tag"),
                ("x-acting-user", "root"),
                ("connection", "x-hop-secret"),
                ("x-hop-secret", "must-not-cross"),
            ],
            Bytes::from_static(body.as_bytes()),
        )
        .await?;

    // The upstream's answer comes back as it was sent.
    expect_status(&reply, 201)?;
    ensure!(
        reply.body == CREATED_BODY.as_bytes(),
        "body changed: {:?}",
        reply.text()
    );
    ensure!(reply.header("content-type").as_deref() == Some("application/json"));
    ensure!(
        reply.header("x-upstream").as_deref() == Some("e2e"),
        "upstream header lost"
    );
    ensure!(reply.header("lastmile-decision").as_deref() == Some("allowed"));
    ensure!(reply.header("lastmile-trace-id").as_deref() == Some(INBOUND_TRACE_ID));

    // The upstream saw exactly one request, rewritten for it.
    let got = upstream.only_request()?;
    ensure!(
        got.method == Method::POST && got.path == "/v1/invoices",
        "{} {}",
        got.method,
        got.path
    );
    ensure!(
        got.query.as_deref() == Some("draft=true"),
        "query {:?}",
        got.query
    );
    ensure!(
        got.body == body.as_bytes(),
        "body changed on the way up: {:?}",
        got.body
    );
    ensure!(got.header("content-type").as_deref() == Some("application/json"));
    ensure!(
        got.header("x-request-tag").as_deref() == Some("e2e-tag"),
        "ordinary header dropped"
    );
    let authorization = got.header_all("authorization");
    ensure!(
        authorization == vec![format!("Bearer {UPSTREAM_TOKEN}")],
        "upstream authorization should be the route credential only, got {authorization:?}"
    );
    ensure!(
        got.header("x-lastmile-user").is_none(),
        "identity token forwarded upstream"
    );
    ensure!(
        got.header("host") == Some(upstream.addr.to_string()),
        "upstream Host: {:?}",
        got.header("host")
    );
    ensure!(
        got.header("x-hop-secret").is_none(),
        "a header named in Connection crossed the proxy"
    );
    // The policy's header obligation replaces whatever the agent claimed.
    ensure!(
        got.header_all("x-acting-user") == vec!["alice"],
        "x-acting-user: {:?}",
        got.header_all("x-acting-user")
    );
    let leaked: Vec<_> = got
        .headers
        .iter()
        .filter(|(_, v)| v.as_bytes().ends_with(b"agent-own-key-must-not-travel"))
        .collect();
    ensure!(
        leaked.is_empty(),
        "agent's own credential forwarded: {leaked:?}"
    );

    // Same trace, new parent: lastmile's own span.
    let upstream_traceparent = got.header("traceparent").unwrap_or_default();
    let parts: Vec<&str> = upstream_traceparent.split('-').collect();
    ensure!(
        parts.len() == 4,
        "upstream traceparent {upstream_traceparent:?}"
    );
    ensure!(
        parts[0] == "00" && parts[1] == INBOUND_TRACE_ID && parts[3] == "01",
        "{upstream_traceparent}"
    );
    ensure!(
        parts[2] != INBOUND_PARENT_ID,
        "parent id not replaced: {upstream_traceparent}"
    );
    ensure!(
        parts[2].len() == 16
            && parts[2]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "parent id {:?} is not 16 lower-case hex digits",
        parts[2]
    );
    Ok(())
}

#[tokio::test]
async fn policy_query_parameters_replace_the_agents() -> Result<()> {
    let (upstream, proxy) = crm_proxy(|route| route.require_user()).await?;
    let token = jwt::token("alice", "crm.read")?;

    let reply = proxy
        .get(
            "/crm/v1/search?q=late+fees&account=globex",
            &[("x-lastmile-user", &token)],
        )
        .await?;

    expect_status(&reply, 201)?;
    ensure!(reply.header("lastmile-decision").as_deref() == Some("allowed"));
    let query = upstream.only_request()?.query.unwrap_or_default();
    let pairs: BTreeSet<&str> = query.split('&').collect();
    ensure!(
        pairs == BTreeSet::from(["account=acme", "q=late+fees"]),
        "the policy's account filter must replace the agent's: upstream query {query:?}"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_traceparent_starts_a_new_trace() -> Result<()> {
    let (upstream, proxy) = crm_proxy(std::convert::identity).await?;
    let bad = format!(
        "00-{}-{INBOUND_PARENT_ID}-01",
        INBOUND_TRACE_ID.to_uppercase()
    );

    let reply = proxy
        .get("/crm/v1/invoices", &[("traceparent", &bad)])
        .await?;

    expect_status(&reply, 201)?;
    let trace_id = reply.header("lastmile-trace-id").unwrap_or_default();
    ensure!(
        trace_id.len() == 32 && !trace_id.eq_ignore_ascii_case(INBOUND_TRACE_ID),
        "trace id {trace_id:?}"
    );
    let sent = upstream
        .only_request()?
        .header("traceparent")
        .unwrap_or_default();
    ensure!(
        sent.starts_with(&format!("00-{trace_id}-")) && sent != bad,
        "upstream traceparent {sent:?}"
    );
    Ok(())
}

#[tokio::test]
async fn rotated_credential_file_is_used_without_a_restart() -> Result<()> {
    let (upstream, proxy) = crm_proxy(std::convert::identity).await?;
    let first = proxy.get("/crm/v1/invoices", &[]).await?;
    expect_status(&first, 201)?;

    // Same length, as a rotated token usually is.
    let rotated = UPSTREAM_TOKEN.replace('7', "8");
    proxy
        .workspace()
        .write("secrets/upstream-token", &format!("{rotated}\n"))?;
    let expected = format!("Bearer {rotated}");
    crate::harness::eventually(
        "the rotated credential upstream",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let reply = proxy.get("/crm/v1/invoices", &[]).await?;
            expect_status(&reply, 201)?;
            let received = upstream.received();
            let last = received
                .last()
                .map(|r| r.header_all("authorization"))
                .unwrap_or_default();
            Ok((last == vec![expected.clone()]).then_some(()))
        },
    )
    .await?;
    ensure!(
        upstream.received()[0].header_all("authorization")
            == vec![format!("Bearer {UPSTREAM_TOKEN}")]
    );
    Ok(())
}
