//! What every test needs: a recording upstream, the proxy as a child process, an HTTP
//! client, signed identity tokens, a metrics parser, and the test policies.

pub mod approvals;
pub mod client;
pub mod config;
pub mod jwks;
pub mod jwt;
pub mod metrics;
pub mod policies;
pub mod proxy;
pub mod redis;
pub mod serve;
pub mod token_endpoint;
pub mod upstream;
pub mod webdriver;

pub use client::Reply;
pub use config::{RouteSpec, Setup};
pub use proxy::{Proxy, Workspace};
pub use upstream::{Behaviour, Upstream};

use anyhow::{bail, ensure, Context, Result};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// The credential the proxy injects upstream (the file holds it with a trailing newline).
pub const UPSTREAM_TOKEN: &str = "e2e-upstream-credential-7f3a9c51";

/// The admin API's bearer token, when a setup enables it.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0c41d2a8";

/// Approvers in `secrets/approvers`: name and bearer token.
pub const APPROVERS: [(&str, &str); 3] = [
    ("alice", "e2e-approver-alice-5b8e1f"),
    ("bob", "e2e-approver-bob-93c0d7"),
    // The same name as an acting user, to prove self-approval is refused.
    ("u_agent_user", "e2e-approver-self-44a1c9"),
];

/// A valid inbound W3C traceparent.
pub const INBOUND_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const INBOUND_PARENT_ID: &str = "00f067aa0ba902b7";

/// The most common set-up: a recording upstream answering 201 behind one route, `crm`
/// on `/crm`, shaped by `route`, with the standard test policy.
pub async fn crm_proxy(route: impl FnOnce(RouteSpec) -> RouteSpec) -> Result<(Upstream, Proxy)> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Proxy::start(&Setup::new(vec![route(RouteSpec::new(
        "crm",
        "/crm",
        upstream.url(),
    ))]))
    .await?;
    Ok((upstream, proxy))
}

/// Polls `check` every `every` until it yields a value, failing after `limit`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        sleep(every).await;
    }
}

/// The repository's root, where `policies/`, `charts/` and `.ci/` live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copies the directory `from`, recursively, to `to` (created if missing).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Fails unless `reply` has `status`; the error carries the status and the body.
pub fn expect_status(reply: &Reply, status: u16) -> Result<()> {
    ensure!(
        reply.status == status,
        "expected status {status}, got {}: {}",
        reply.status,
        reply.text()
    );
    Ok(())
}

/// Asserts a refusal lastmile made itself: status, JSON body with the code, and the
/// decision and trace headers agreeing with the body.
pub fn assert_refusal(reply: &Reply, status: u16, code: &str) -> Result<serde_json::Value> {
    ensure!(
        reply.status == status,
        "expected status {status} ({code}), got {}: {}",
        reply.status,
        reply.text()
    );
    ensure!(
        reply.header("content-type").as_deref() == Some("application/json"),
        "refusal content-type: {:?}",
        reply.header("content-type")
    );
    let body = reply.json()?;
    let error = &body["error"];
    ensure!(error["code"] == code, "expected code {code}, body: {body}");
    ensure!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
    ensure!(
        error["reasons"].is_array(),
        "reasons must be an array: {body}"
    );
    ensure!(
        reply.header("lastmile-decision").as_deref() == Some(code),
        "lastmile-decision header: {:?}",
        reply.header("lastmile-decision")
    );
    let trace_id = reply.header("lastmile-trace-id");
    ensure!(
        trace_id.is_some() && error["trace_id"].as_str() == trace_id.as_deref(),
        "trace id header {trace_id:?} vs body {body}"
    );
    Ok(body)
}
