//! The process as an operator sees it: the files it creates (readable by its own user
//! only: they hold users, request fields and parked requests) and the signals it obeys.

use crate::harness::config::TRACE_FILE;
use crate::harness::{
    approvals, eventually, expect_status, Behaviour, Proxy, RouteSpec, Setup, Upstream,
};
use anyhow::{ensure, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const STORE: &str = "state/approvals.db";

/// The permission bits of `path`.
fn mode(path: &Path) -> Result<u32> {
    let metadata = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    Ok(metadata.permissions().mode() & 0o777)
}

/// Asserts that each of `files` (relative to the workspace) exists with mode 0600.
fn ensure_private(proxy: &Proxy, files: &[&str]) -> Result<()> {
    for file in files {
        let mode = mode(&proxy.workspace().path(file))?;
        ensure!(mode == 0o600, "{file} has mode {mode:o}, not 600");
    }
    Ok(())
}

#[tokio::test]
async fn the_approvals_store_and_the_trace_file_are_created_private() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = approvals::start(&upstream).await?;
    // Parking writes to the store, so SQLite's WAL and shared-memory files exist too.
    approvals::park(&proxy, "INV-1").await?;
    eventually(
        "the trace file to hold a record",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || std::future::ready(proxy.trace_text().map(|t| (!t.is_empty()).then_some(()))),
    )
    .await?;
    let wal = format!("{STORE}-wal");
    let shm = format!("{STORE}-shm");
    ensure_private(&proxy, &[STORE, &wal, &shm, TRACE_FILE])
}

#[tokio::test]
async fn world_readable_files_left_from_before_are_tightened_at_start() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let workspace = approvals::workspace()?;
    let wal = format!("{STORE}-wal");
    // An empty file is a valid new SQLite database, and an empty WAL a valid empty log.
    for file in [TRACE_FILE, STORE, &wal] {
        workspace.write(file, "")?;
        std::fs::set_permissions(workspace.path(file), std::fs::Permissions::from_mode(0o644))?;
    }
    let proxy = workspace.start(&approvals::setup(&upstream, |r| r)).await?;
    approvals::park(&proxy, "INV-1").await?;
    ensure_private(&proxy, &[TRACE_FILE, STORE, &wal])?;
    let stderr = proxy.stderr();
    ensure!(
        stderr.contains("644") && stderr.contains(TRACE_FILE),
        "no warning names the tightened file:\n{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn sighup_drains_in_flight_requests_and_exits_cleanly() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_secs(2))).await?;
    let mut proxy = Proxy::start(&Setup::new(vec![RouteSpec::new(
        "crm",
        "/crm",
        upstream.url(),
    )]))
    .await?;
    let pid = proxy.pid().to_string();
    let slow = proxy.get("/crm/v1/invoices", &[]);
    // The signal goes out once the upstream holds the request: it is then in flight.
    let hangup = async {
        eventually(
            "the upstream to receive the request",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || std::future::ready(Ok((!upstream.received().is_empty()).then_some(()))),
        )
        .await?;
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()?;
        ensure!(status.success(), "kill -HUP {pid}: {status}");
        Ok(())
    };
    let (reply, sent) = tokio::join!(slow, hangup);
    sent?;
    let reply = reply.context("the in-flight request was cut off")?;
    expect_status(&reply, 200)?;
    ensure!(
        reply.text().contains("late"),
        "in-flight request: {}",
        reply.text()
    );
    let status = proxy.exit_status(Duration::from_secs(15)).await?;
    ensure!(
        status.success(),
        "exited with {status}:\n{}",
        proxy.stderr()
    );
    eventually(
        "the log to name the signal",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || std::future::ready(Ok(proxy.stderr().contains("SIGHUP").then_some(()))),
    )
    .await?;
    Ok(())
}
