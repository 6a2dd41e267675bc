//! lastmile: a policy sidecar that stands between AI agents and the systems of record
//! they act on. Every outbound request is checked against hot-reloaded Rego policies,
//! then forwarded or refused; every decision is counted and traced.
//!
//! The library owns the whole server so tests drive the real start-up path; the binary
//! only parses arguments and hands over a shutdown signal.

pub mod admin;
pub mod admin_token;
pub mod approval;
pub mod cli;
pub mod config;
pub mod dedup;
pub mod demo;
pub mod headers;
pub mod hex;
pub mod identity;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod private_file;
pub mod ready;
pub mod refusal;
pub mod response;
pub mod route;
pub mod server;
pub mod signal;
mod startup;
pub mod telemetry;
pub mod trace;
pub mod upstream;

#[cfg(test)]
mod properties;

use anyhow::{Context, Result};
use config::Config;
use startup::running::Running;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds the data and admin listeners, then serves until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    let data = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the data listener on {}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener on {}", config.admin_listen))?;
    serve(config, data, admin, shutdown).await
}

/// Serves on already-bound listeners. Start-up fails, and nothing is served, when the
/// policy bundle cannot be loaded: there is never a window without a policy.
pub async fn serve(
    config: Config,
    data: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    serve_with_clock(
        config,
        data,
        admin,
        shutdown,
        Arc::new(dedup::clock::SystemClock),
    )
    .await
}

/// [`serve`], with the wall clock that dedup windows and approval expiry use; tests
/// pass a manual clock to expire approvals without sleeping.
pub async fn serve_with_clock(
    config: Config,
    data: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    clock: Arc<dyn dedup::clock::Clock>,
) -> Result<()> {
    let opened = startup::open(&config, clock).await?;
    let admin_state = opened.admin(&config)?;
    let running = Running::spawn(&config, data, admin, opened, admin_state.clone())?;
    admin_state.ready.store(true, Ordering::Relaxed);
    tracing::info!(data_addr = %running.data_addr, admin_addr = %running.admin_addr, "lastmile ready");

    shutdown.await;
    tracing::info!("shutting down: draining open requests");
    admin_state.ready.store(false, Ordering::Relaxed);
    running.drain().await;
    let traces = admin_state.traces.clone();
    let _ = tokio::task::spawn_blocking(move || traces.flush()).await;
    Ok(())
}
