//! Absolute-form requests (clients configured with `HTTP_PROXY`) are routed by host.

use crate::harness::upstream::CREATED_BODY;
use crate::harness::{
    assert_refusal, Behaviour, Proxy, RouteSpec, Setup, Upstream, UPSTREAM_TOKEN,
};
use anyhow::{ensure, Result};

#[tokio::test]
async fn absolute_form_request_is_routed_by_host() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Proxy::start(&Setup::new(vec![RouteSpec::new(
        "crm",
        "/crm",
        upstream.url(),
    )
    .by_host("crm.e2e.test")]))
    .await?;

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
