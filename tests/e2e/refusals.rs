//! Requests lastmile refuses itself. In every case the upstream receives nothing.

use crate::harness::{assert_refusal, jwt, Behaviour, Proxy, RouteSpec, Setup, Upstream};
use anyhow::{ensure, Result};
use bytes::Bytes;
use http::Method;
use serde_json::json;

const LIMIT: usize = 1024;

/// `crm` needs an acting user; `open` does not. Both accept bodies up to [`LIMIT`].
async fn start() -> Result<(Upstream, Proxy)> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let routes = vec![
        RouteSpec::new("crm", "/crm", upstream.url())
            .require_user()
            .max_body_bytes(LIMIT),
        RouteSpec::new("open", "/open", upstream.url()).max_body_bytes(LIMIT),
    ];
    let proxy = Proxy::start(&Setup::new(routes)).await?;
    Ok((upstream, proxy))
}

fn alice() -> Result<String> {
    jwt::token("alice", "crm.read crm.write")
}

#[tokio::test]
async fn denied_request_is_403_with_the_policy_reasons() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let token = alice()?;
    let reply = proxy
        .post_json(
            "/crm/v1/invoices",
            &[("x-lastmile-user", &token)],
            &json!({"amount": 10, "forbidden": "yes"}),
        )
        .await?;

    let body = assert_refusal(&reply, 403, "denied")?;
    let error = &body["error"];
    ensure!(
        error["reasons"]
            == json!([{"code": "forbidden_field", "message": "the field 'forbidden' may not be sent"}]),
        "{body}"
    );
    let trace_id = error["trace_id"].as_str().unwrap_or_default();
    ensure!(
        trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );
    let revision = error["policy_revision"].as_str().unwrap_or_default();
    ensure!(revision.starts_with("sha256:"), "{body}");
    let ready = proxy.admin_get("/readyz").await?.json()?;
    ensure!(
        ready["policy_revision"] == revision,
        "refusal names {revision}, /readyz says {ready}"
    );
    upstream.nothing_received()
}

#[tokio::test]
async fn user_without_the_scope_is_denied() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let token = jwt::token("bob", "crm.read")?;
    let reply = proxy
        .post_json(
            "/crm/v1/invoices",
            &[("x-lastmile-user", &token)],
            &json!({"amount": 10}),
        )
        .await?;

    let body = assert_refusal(&reply, 403, "denied")?;
    ensure!(
        body["error"]["reasons"][0]["code"] == "missing_scope",
        "{body}"
    );
    upstream.nothing_received()
}

#[tokio::test]
async fn approval_decision_is_refused_while_approvals_are_unavailable() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let token = alice()?;
    let reply = proxy
        .post_json(
            "/crm/v1/invoices",
            &[("x-lastmile-user", &token)],
            &json!({"amount": 5000}),
        )
        .await?;

    let body = assert_refusal(&reply, 403, "approval_unavailable")?;
    ensure!(
        body["error"]["reasons"]
            == json!([{"code": "amount_over_limit", "message": "amount 5000 is over the limit of 1000"}]),
        "{body}"
    );
    upstream.nothing_received()
}

#[tokio::test]
async fn malformed_decision_is_a_policy_error_and_fails_closed() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let reply = proxy
        .post_json("/open/v1/tickets", &[], &json!({"set_host": true}))
        .await?;
    assert_refusal(&reply, 403, "policy_error")?;
    let trace_id = reply.header("lastmile-trace-id").unwrap_or_default();
    let record = proxy.trace_record(&trace_id).await?;
    let message = record["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("reserved"),
        "refused for another reason: {record}"
    );
    let metrics = proxy.metrics().await?;
    let wrong_shape = metrics.get(
        "lastmile_policy_failures_total",
        &[("kind", "wrong_shape"), ("route", "open")],
    );
    ensure!(wrong_shape == Some(1.0), "{}", metrics.text);
    upstream.nothing_received()
}

#[tokio::test]
async fn unknown_route_is_404_no_route() -> Result<()> {
    let (upstream, proxy) = start().await?;
    for path in ["/nowhere/v1/x", "/crmx/v1/invoices", "/"] {
        let reply = proxy.get(path, &[]).await?;
        assert_refusal(&reply, 404, "no_route").map_err(|e| e.context(path))?;
    }
    upstream.nothing_received()
}

#[tokio::test]
async fn connect_is_refused() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let reply = proxy
        .raw("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await?;
    assert_refusal(&reply, 405, "connect_refused")?;
    upstream.nothing_received()
}

#[tokio::test]
async fn oversized_body_is_413() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let big = json!({"subject": "x".repeat(2 * LIMIT)});

    // Declared too long.
    let reply = proxy.post_json("/open/v1/tickets", &[], &big).await?;
    assert_refusal(&reply, 413, "body_too_large")?;

    // No length declared: refused once the limit is crossed while reading.
    let chunk = "y".repeat(LIMIT);
    let request = format!(
        "POST /open/v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let reply = proxy.raw(&request).await?;
    assert_refusal(&reply, 413, "body_too_large").map_err(|e| e.context("chunked body"))?;
    upstream.nothing_received()
}

#[tokio::test]
async fn invalid_json_is_400() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let reply = proxy
        .request(
            Method::POST,
            "/open/v1/tickets",
            &[("content-type", "application/json")],
            Bytes::from_static(b"{\"subject\": \"x\","),
        )
        .await?;
    assert_refusal(&reply, 400, "invalid_json")?;
    upstream.nothing_received()
}

#[tokio::test]
async fn missing_user_token_on_a_require_user_route_is_401() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let reply = proxy
        .post_json("/crm/v1/invoices", &[], &json!({"amount": 10}))
        .await?;
    assert_refusal(&reply, 401, "user_required")?;
    upstream.nothing_received()
}

#[tokio::test]
async fn bad_user_tokens_are_401_unauthenticated() -> Result<()> {
    let (upstream, proxy) = start().await?;
    // Each token is refused for its own defect, on routes with and without require_user.
    let tokens = [
        (
            "wrong signature",
            jwt::wrong_signature_token("mallory")?,
            "signature",
        ),
        ("expired", jwt::expired_token("alice")?, "expired"),
        ("alg none", jwt::alg_none_token("mallory"), "algorithm"),
        (
            "wrong issuer",
            jwt::wrong_issuer_token("mallory")?,
            "issuer",
        ),
    ];
    for (what, token, defect) in &tokens {
        for path in ["/crm/v1/invoices", "/open/v1/tickets"] {
            let reply = proxy
                .post_json(path, &[("x-lastmile-user", token)], &json!({"amount": 10}))
                .await?;
            let body = assert_refusal(&reply, 401, "unauthenticated")
                .map_err(|e| e.context(format!("{what} on {path}")))?;
            ensure!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(defect)),
                "{what}: {body}"
            );
            ensure!(
                !reply.text().contains(token.as_str()),
                "{what}: the refusal echoes the token: {body}"
            );
        }
    }

    // Two identity headers, even if one is valid, are ambiguous: refused before either
    // is verified.
    let good = alice()?;
    let reply = proxy
        .request(
            Method::POST,
            "/crm/v1/invoices",
            &[
                ("content-type", "application/json"),
                ("x-lastmile-user", &good),
                ("x-lastmile-user", &tokens[0].1),
            ],
            Bytes::from_static(b"{}"),
        )
        .await?;
    assert_refusal(&reply, 400, "ambiguous_header")
        .map_err(|e| e.context("two identity headers"))?;
    upstream.nothing_received()
}

#[tokio::test]
async fn path_traversal_is_400_bad_path() -> Result<()> {
    let (upstream, proxy) = start().await?;
    let token = alice()?;
    for path in [
        "/crm/v1/../admin",
        "/crm/../admin",
        "/open/v1/%2e%2e/admin",
        "/open/v1/a%2Fb",
        "/open/v1//x",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Lastmile-User: {token}\r\nConnection: close\r\n\r\n");
        let reply = proxy.raw(&request).await?;
        assert_refusal(&reply, 400, "bad_path").map_err(|e| e.context(path))?;
    }
    upstream.nothing_received()
}
