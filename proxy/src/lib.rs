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
pub mod telemetry;
pub mod trace;
pub mod upstream;

#[cfg(test)]
mod properties;

use anyhow::{Context, Result};
use config::Config;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    let metrics = metrics::Metrics::new()?;
    let policy_config = config.policies.clone();
    let policy_metrics = metrics.clone();
    let policy = tokio::task::spawn_blocking(move || {
        policy::PolicyStore::load(policy_config, policy_metrics)
    })
    .await?
    .context("loading the policy bundle")?;
    let policy = Arc::new(policy);
    let traces =
        trace::TraceSink::start(&config.trace, &config.policies.entrypoint, metrics.clone())?;
    let dedup = dedup::open(&config.dedup, clock.clone()).context("opening the dedup store")?;
    let approvals = match &config.approvals {
        Some(settings) => {
            let store = approval::Approvals::open_store(settings)?;
            let approvals = Arc::new(approval::Approvals::new(
                settings.clone(),
                store,
                clock.clone(),
                metrics.clone(),
                traces.clone(),
            )?);
            approvals
                .recover()
                .await
                .context("recovering interrupted approvals")?;
            Some(approvals)
        }
        None => None,
    };
    let ready = ready::Ready::build(&config, &metrics)?;
    let proxy = Arc::new(pipeline::Proxy::new(
        &config,
        ready,
        policy.clone(),
        metrics.clone(),
        traces.clone(),
        dedup.clone(),
        approvals.clone(),
    )?);
    let approvers = match (
        &approvals,
        approval::auth::ApproverAuth::from_config(&config, proxy.identity())?,
    ) {
        (Some(queue), Some(auth)) => Some(admin::approvals::ApproverSide {
            proxy: proxy.clone(),
            approvals: queue.clone(),
            auth,
            sessions: admin::approvals::page::Sessions::default(),
        }),
        _ => None,
    };
    let admin_state = Arc::new(admin::Admin {
        metrics,
        traces,
        policy: policy.clone(),
        ready: AtomicBool::new(false),
        dedup,
        operator: admin_token::OperatorToken::new(config.admin_token_file.clone()),
        approvers,
    });

    let (stop, stopped) = watch::channel(false);
    let sweeper = approvals.clone().map(|queue| {
        let resumed = proxy.clone();
        let resuming = queue.clone();
        tokio::spawn(async move {
            // Approved before the last stop but never started: nothing was sent, so
            // they run now (the guarded move to `executing` keeps that to one run).
            if let Ok(ids) = resuming.approved_ids().await {
                for id in ids {
                    if let Ok(Some(approval)) = resuming.get(&id).await {
                        resumed.execute(approval).await;
                    }
                }
            }
        });
        tokio::spawn(queue.run_sweeper(stopped.clone()))
    });
    let mut reload_stopped = stopped.clone();
    let reload = tokio::spawn(policy::reload::start(policy).run(async move {
        let _ = reload_stopped.wait_for(|s| *s).await;
    }));
    let data_addr = data.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let data_server = tokio::spawn(server::serve(
        data,
        move |request| {
            let proxy = proxy.clone();
            async move { proxy.handle(request).await }
        },
        config.server.clone(),
        stopped.clone(),
    ));
    let admin_handler = admin_state.clone();
    let admin_server = tokio::spawn(server::serve(
        admin,
        move |request| {
            let admin = admin_handler.clone();
            async move { admin.handle(request).await }
        },
        config.server.clone(),
        stopped,
    ));
    admin_state.ready.store(true, Ordering::Relaxed);
    tracing::info!(data_addr = %data_addr, admin_addr = %admin_addr, "lastmile ready");

    shutdown.await;
    tracing::info!("shutting down: draining open requests");
    admin_state.ready.store(false, Ordering::Relaxed);
    let _ = stop.send(true);
    let _ = tokio::join!(data_server, admin_server, reload);
    if let Some(sweeper) = sweeper {
        let _ = sweeper.await;
    }
    let traces = admin_state.traces.clone();
    let _ = tokio::task::spawn_blocking(move || traces.flush()).await;
    Ok(())
}
