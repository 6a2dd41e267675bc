//! Start-up in steps: open what both servers share ([`open`]), build the admin port's
//! state, then spawn the servers and background tasks ([`running`]) that are drained
//! together at shutdown.

pub(crate) mod running;

use crate::admin::approvals::{page::Sessions, ApproverSide};
use crate::admin::Admin;
use crate::admin_token::OperatorToken;
use crate::approval::{auth::ApproverAuth, Approvals};
use crate::config::Config;
use crate::dedup::{clock::Clock, store::DedupStore};
use crate::metrics::Metrics;
use crate::pipeline::Proxy;
use crate::policy::PolicyStore;
use crate::trace::TraceSink;
use crate::{dedup, ready};
use anyhow::{Context, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Everything the two servers share, opened before either accepts a connection.
pub(crate) struct Opened {
    pub metrics: Metrics,
    pub policy: Arc<PolicyStore>,
    pub traces: TraceSink,
    pub dedup: Arc<dyn DedupStore>,
    pub approvals: Option<Arc<Approvals>>,
    pub proxy: Arc<Proxy>,
}

/// Opens the policy bundle, trace sink, dedup store and approval queue, and builds the
/// proxy on them. Fails, before anything is served, when the bundle cannot be loaded:
/// there is never a window without a policy.
pub(crate) async fn open(config: &Config, clock: Arc<dyn Clock>) -> Result<Opened> {
    let metrics = Metrics::new()?;
    let policy = Arc::new(load_policy(config, &metrics).await?);
    let traces = TraceSink::start(&config.trace, &config.policies.entrypoint, metrics.clone())?;
    let dedup = dedup::open(&config.dedup, clock.clone()).context("opening the dedup store")?;
    let approvals = open_approvals(config, clock, &metrics, &traces).await?;
    let ready = ready::Ready::build(config, &metrics)?;
    let proxy = Arc::new(Proxy::new(
        config,
        ready,
        policy.clone(),
        metrics.clone(),
        traces.clone(),
        dedup.clone(),
        approvals.clone(),
    )?);
    Ok(Opened {
        metrics,
        policy,
        traces,
        dedup,
        approvals,
        proxy,
    })
}

/// Loading compiles Rego and may run the bundle's tests, so it runs off the runtime.
async fn load_policy(config: &Config, metrics: &Metrics) -> Result<PolicyStore> {
    let policy_config = config.policies.clone();
    let policy_metrics = metrics.clone();
    tokio::task::spawn_blocking(move || PolicyStore::load(policy_config, policy_metrics))
        .await?
        .context("loading the policy bundle")
}

/// The approval queue, when configured, with approvals interrupted by the last stop
/// recovered before any new request can touch them.
async fn open_approvals(
    config: &Config,
    clock: Arc<dyn Clock>,
    metrics: &Metrics,
    traces: &TraceSink,
) -> Result<Option<Arc<Approvals>>> {
    let Some(settings) = &config.approvals else {
        return Ok(None);
    };
    let store = Approvals::open_store(settings)?;
    let approvals = Arc::new(Approvals::new(
        settings.clone(),
        store,
        clock,
        metrics.clone(),
        traces.clone(),
    )?);
    approvals
        .recover()
        .await
        .context("recovering interrupted approvals")?;
    Ok(Some(approvals))
}

impl Opened {
    /// The admin port's state; it starts not ready, and is marked ready once serving.
    pub(crate) fn admin(&self, config: &Config) -> Result<Arc<Admin>> {
        Ok(Arc::new(Admin {
            metrics: self.metrics.clone(),
            traces: self.traces.clone(),
            policy: self.policy.clone(),
            ready: AtomicBool::new(false),
            dedup: self.dedup.clone(),
            operator: OperatorToken::new(config.admin_token_file.clone()),
            approvers: self.approver_side(config)?,
        }))
    }

    /// The approvers' API and page exist only with both a queue and a way to tell
    /// approvers apart.
    fn approver_side(&self, config: &Config) -> Result<Option<ApproverSide>> {
        let auth = ApproverAuth::from_config(config, self.proxy.identity())?;
        Ok(match (&self.approvals, auth) {
            (Some(queue), Some(auth)) => Some(ApproverSide {
                proxy: self.proxy.clone(),
                approvals: queue.clone(),
                auth,
                sessions: Sessions::default(),
            }),
            _ => None,
        })
    }
}
