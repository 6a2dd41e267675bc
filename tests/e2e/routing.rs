//! Absolute-form requests (clients configured with `HTTP_PROXY`) are routed by host.

use crate::harness::upstream::CREATED_BODY;
use crate::harness::{assert_refusal, crm_proxy, expect_status, UPSTREAM_TOKEN};
use anyhow::{ensure, Context, Result};

#[tokio::test]
async fn absolute_form_request_is_routed_by_host() -> Result<()> {
    let (upstream, proxy) = crm_proxy(|route| route.by_host("crm.e2e.test")).await?;

    let reply = proxy
        .raw("GET http://crm.e2e.test/v1/invoices?status=open HTTP/1.1\r\nHost: crm.e2e.test\r\nConnection: close\r\n\r\n")
        .await?;
    expect_status(&reply, 201)?;
    ensure!(reply.body == CREATED_BODY.as_bytes());
    ensure!(reply.header("lastmile-decision").as_deref() == Some("allowed"));
    let sent = upstream.only_request()?;
    ensure!(sent.path == "/v1/invoices" && sent.query.as_deref() == Some("status=open"));
    ensure!(sent.header_all("authorization") == vec![format!("Bearer {UPSTREAM_TOKEN}")]);

    // Another host is not this route's.
    let other = proxy
        .raw("GET http://evil.e2e.test/v1/invoices HTTP/1.1\r\nHost: evil.e2e.test\r\nConnection: close\r\n\r\n")
        .await?;
    assert_refusal(&other, 404, "no_route")?;
    upstream
        .only_request()
        .context("a request for another host reached the upstream")?;
    Ok(())
}

#[tokio::test]
async fn cleartext_http2_requests_are_served_and_forwarded() -> anyhow::Result<()> {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let (upstream, proxy) = crm_proxy(std::convert::identity).await?;
    // Prior-knowledge h2c, as gRPC-style and HTTP/2-only clients speak it.
    let h2c: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = http::Request::post(format!("http://{}/crm/v1/tickets", proxy.data))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"subject":"printer"}"#)))?;
    let reply = crate::harness::client::send(&h2c, request).await?;
    expect_status(&reply, 201)?;
    anyhow::ensure!(reply.header("lastmile-decision").as_deref() == Some("allowed"));
    upstream.only_request()?;
    Ok(())
}
