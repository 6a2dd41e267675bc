//! Upstream and policy faults: a connection reset after the request was sent, a response
//! body cut short, a TLS handshake that fails, and a policy evaluation that runs out of
//! time. Each is reported for what it is, and the proxy stays healthy.

use crate::harness::{assert_refusal, expect_status, policies, RouteSpec, Setup, Workspace};
use anyhow::{ensure, Context, Result};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a misbehaving upstream does once it has read a request.
#[derive(Clone, Copy)]
enum Fault {
    /// Closes the connection without answering.
    Reset,
    /// Sends a head promising 100 bytes, 10 of them, then closes.
    Truncate,
    /// Reads whatever arrives (a TLS ClientHello) and closes: the handshake fails.
    NotTls,
}

/// A TCP server that records what it read and then misbehaves.
struct FaultyUpstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl FaultyUpstream {
    async fn start(fault: Fault) -> Result<FaultyUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    log.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(buf[..n].to_vec());
                    if let Fault::Truncate = fault {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\": \"12")
                            .await;
                    }
                    // Dropping the stream closes it.
                });
            }
        });
        Ok(FaultyUpstream {
            addr,
            received,
            task,
        })
    }

    fn received(&self) -> Vec<Vec<u8>> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_to(upstream: String) -> Result<crate::harness::Proxy> {
    Workspace::with_policy(policies::DEDUP_POLICY)?
        .start(&Setup::new(vec![RouteSpec::new("crm", "/crm", upstream)]))
        .await
}

#[tokio::test]
async fn a_reset_after_sending_is_an_unknown_outcome_and_is_not_retried() -> Result<()> {
    let upstream = FaultyUpstream::start(Fault::Reset).await?;
    let proxy = proxy_to(format!("http://{}", upstream.addr)).await?;
    let body = json!({"invoice": "INV-R"});
    let first = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    let error = assert_refusal(&first, 502, "upstream_failed")?;
    ensure!(error["error"]["outcome"] == "unknown", "{error}");
    let retry = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    assert_refusal(&retry, 409, "outcome_unknown")?;
    ensure!(
        upstream.received().len() == 1,
        "the proxy retried: {} requests",
        upstream.received().len()
    );
    expect_status(&proxy.admin_get("/healthz").await?, 200)?;
    Ok(())
}

#[tokio::test]
async fn a_body_cut_short_is_not_replayed_as_if_complete() -> Result<()> {
    let upstream = FaultyUpstream::start(Fault::Truncate).await?;
    let proxy = proxy_to(format!("http://{}", upstream.addr)).await?;
    let body = json!({"invoice": "INV-T"});
    // The head said 200: the upstream acted, but the body never arrived whole.
    let first = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    assert_refusal(&first, 502, "upstream_failed")?;
    let retry = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    let error = assert_refusal(&retry, 409, "completed_not_retained")?;
    ensure!(error["error"]["original_status"] == 200, "{error}");
    ensure!(upstream.received().len() == 1);

    // Without a dedup window the response streams through as it comes: the agent's
    // client sees the connection end before the promised length, never a short body
    // presented as complete.
    let cut = proxy.get("/crm/v1/invoices", &[]).await;
    ensure!(
        cut.is_err(),
        "a truncated body was delivered as complete: {:?}",
        cut.map(|r| r.text())
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_tls_handshake_sends_nothing_and_releases_the_key() -> Result<()> {
    let upstream = FaultyUpstream::start(Fault::NotTls).await?;
    let proxy = proxy_to(format!("https://localhost:{}", upstream.addr.port())).await?;
    let body = json!({"invoice": "INV-S"});
    for _ in 0..2 {
        let reply = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
        let error = assert_refusal(&reply, 502, "upstream_unreachable")?;
        ensure!(error["error"].get("outcome").is_none(), "{error}");
    }
    // Two handshakes (the key was released after the first), and no request in clear.
    let received = upstream.received();
    ensure!(received.len() == 2, "{} connections", received.len());
    for bytes in received {
        ensure!(
            bytes.first() == Some(&0x16),
            "not a TLS handshake record: {:?}",
            &bytes[..bytes.len().min(16)]
        );
        ensure!(
            !String::from_utf8_lossy(&bytes).contains("INV-S"),
            "the body crossed in clear"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_policy_that_runs_out_of_time_is_refused_and_the_proxy_stays_healthy() -> Result<()> {
    let upstream = crate::harness::Upstream::start(crate::harness::Behaviour::created()).await?;
    let slow = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := {"deny": [{"code": "never", "message": "unreachable"}]} if {
	body.slow == true
	count([x | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000); x := i * j]) < 0
}

default decision := {}
"#;
    let proxy = Workspace::with_policy(slow)?
        .start(&Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())]).eval_timeout_ms(50))
        .await?;
    let reply = proxy
        .post_json("/crm/v1/invoices", &[], &json!({"slow": true}))
        .await?;
    assert_refusal(&reply, 403, "policy_error")?;
    upstream.nothing_received()?;
    expect_status(&proxy.admin_get("/healthz").await?, 200)?;
    let fast = proxy
        .post_json("/crm/v1/invoices", &[], &json!({"slow": false}))
        .await?;
    expect_status(&fast, 201)?;
    let trace = proxy
        .trace_record(&reply.header("lastmile-trace-id").unwrap_or_default())
        .await?;
    ensure!(trace["error"]["code"] == "policy_error", "{trace}");
    // Counted apart from other policy failures.
    let metrics = proxy.metrics().await?;
    let timeouts = metrics.get(
        "lastmile_policy_failures_total",
        &[("kind", "timeout"), ("route", "crm")],
    );
    ensure!(timeouts == Some(1.0), "{}", metrics.text);
    Ok(())
}

#[tokio::test]
async fn an_approval_store_that_cannot_be_written_refuses_parking_and_sends_nothing() -> Result<()>
{
    use crate::harness::approvals;
    let upstream = crate::harness::Upstream::start(crate::harness::Behaviour::created()).await?;
    let proxy = approvals::start(&upstream).await?;
    // Another process holds the database's write lock: every write lastmile attempts
    // waits out its busy timeout and fails, as it would on a full or failing disk.
    let lock = rusqlite::Connection::open(proxy.workspace().path("state/approvals.db"))?;
    lock.execute_batch("BEGIN EXCLUSIVE")?;
    let reply = approvals::refund(&proxy, approvals::AGENT_USER, "INV-L", 5000).await?;
    let error = assert_refusal(&reply, 503, "approval_store_unavailable")?;
    ensure!(reply.header("retry-after").is_some(), "{error}");
    upstream
        .nothing_received()
        .context("an unparked request was executed")?;
    lock.execute_batch("ROLLBACK")?;
    drop(lock);
    // Once the store can be written again, the same request parks.
    approvals::park(&proxy, "INV-L").await?;
    upstream.nothing_received()?;
    expect_status(&proxy.admin_get("/healthz").await?, 200)?;
    Ok(())
}
