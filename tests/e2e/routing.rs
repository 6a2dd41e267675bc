//! Absolute-form requests (clients configured with `HTTP_PROXY`) are routed by host.

use crate::harness::upstream::CREATED_BODY;
use crate::harness::{assert_refusal, crm_proxy, UPSTREAM_TOKEN};
use anyhow::{ensure, Result};

#[tokio::test]
async fn absolute_form_request_is_routed_by_host() -> Result<()> {
    let (upstream, proxy) = crm_proxy(|route| route.by_host("crm.e2e.test")).await?;

    let reply = proxy
        .raw("GET http://crm.e2e.test/v1/invoices?status=open HTTP/1.1\r\nHost: crm.e2e.test\r\nConnection: close\r\n\r\n")
        .await?;
    ensure!(
        reply.status == 201,
        "status {}: {}",
        reply.status,
        reply.text()
    );
    ensure!(reply.body == CREATED_BODY.as_bytes());
    ensure!(reply.header("lastmile-decision").as_deref() == Some("allowed"));
    let received = upstream.received();
    ensure!(
        received.len() == 1,
        "upstream received {} requests",
        received.len()
    );
    ensure!(
        received[0].path == "/v1/invoices" && received[0].query.as_deref() == Some("status=open")
    );
    ensure!(received[0].header_all("authorization") == vec![format!("Bearer {UPSTREAM_TOKEN}")]);

    // Another host is not this route's.
    let other = proxy
        .raw("GET http://evil.e2e.test/v1/invoices HTTP/1.1\r\nHost: evil.e2e.test\r\nConnection: close\r\n\r\n")
        .await?;
    assert_refusal(&other, 404, "no_route")?;
    ensure!(
        upstream.received().len() == 1,
        "a request for another host reached the upstream"
    );
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
    anyhow::ensure!(
        reply.status == 201,
        "status {}: {}",
        reply.status,
        reply.text()
    );
    anyhow::ensure!(reply.header("lastmile-decision").as_deref() == Some("allowed"));
    let received = upstream.received();
    anyhow::ensure!(
        received.len() == 1,
        "upstream received {} requests",
        received.len()
    );
    Ok(())
}
