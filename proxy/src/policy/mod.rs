//! Policies: reading a bundle ([`bundle`]), compiling and evaluating it ([`engine`]),
//! parsing its decision ([`decision`]), and keeping the live one current ([`reload`]).
//!
//! The live policy is an [`ArcSwap`] snapshot loaded once per request, so the hot path
//! takes no lock and a reload never disturbs requests already evaluating.

pub mod bundle;
pub mod decision;
pub mod engine;
pub mod reload;

use crate::config::PolicyConfig;
use crate::metrics::Metrics;
use anyhow::Result;
use arc_swap::ArcSwap;
use bundle::Bundle;
use engine::PreparedPolicy;
use std::sync::Arc;

/// The live policy and what is needed to rebuild it.
pub struct PolicyStore {
    current: ArcSwap<PreparedPolicy>,
    config: PolicyConfig,
    metrics: Metrics,
}

/// What a reload attempt did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The directory's content is the active revision already.
    Unchanged,
    /// A new revision is active.
    Activated(String),
    /// The directory could not be read or the bundle was rejected; the last good
    /// revision keeps serving.
    Rejected(String),
}

impl PolicyStore {
    /// Loads the bundle at start-up. A bundle that cannot be loaded is an error: the
    /// proxy never starts without a policy.
    pub fn load(config: PolicyConfig, metrics: Metrics) -> Result<PolicyStore> {
        let policy = compile_dir(&config)?;
        metrics.record_reload(Ok(policy.revision()));
        tracing::info!(revision = policy.revision(), dir = %config.dir.display(), "policy bundle loaded");
        Ok(PolicyStore {
            current: ArcSwap::from_pointee(policy),
            config,
            metrics,
        })
    }

    /// The active policy snapshot.
    pub fn current(&self) -> Arc<PreparedPolicy> {
        self.current.load_full()
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Re-reads the whole directory and activates it if it changed and is valid.
    /// Blocking: compiling takes milliseconds, so call it off the async workers.
    pub fn reload(&self) -> ReloadOutcome {
        let active = self.current.load().revision().to_string();
        let compiled = Bundle::read(&self.config.dir).and_then(|bundle| {
            if bundle.revision == active {
                return Ok(None);
            }
            PreparedPolicy::compile(&bundle, &self.config.entrypoint, self.config.eval_timeout)
                .map(Some)
        });
        match compiled {
            Ok(None) => ReloadOutcome::Unchanged,
            Ok(Some(policy)) => {
                let revision = policy.revision().to_string();
                self.current.store(Arc::new(policy));
                self.metrics.record_reload(Ok(&revision));
                tracing::info!(%revision, previous = %active, "policy bundle activated");
                ReloadOutcome::Activated(revision)
            }
            Err(e) => {
                let message = format!("{e:#}");
                self.metrics.record_reload(Err(()));
                tracing::error!(error = %message, serving = %active, "policy bundle rejected; the last good bundle keeps serving");
                ReloadOutcome::Rejected(message)
            }
        }
    }
}

fn compile_dir(config: &PolicyConfig) -> Result<PreparedPolicy> {
    let bundle = Bundle::read(&config.dir)?;
    PreparedPolicy::compile(&bundle, &config.entrypoint, config.eval_timeout)
}
