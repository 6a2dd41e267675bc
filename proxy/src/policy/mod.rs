//! Policies: reading a bundle ([`bundle`]), compiling and evaluating it ([`engine`]),
//! parsing its decision ([`decision`]), asking it for one ([`decide`]), keeping the
//! live one current ([`reload`]), and judging recorded traffic again ([`replay`]).
//!
//! The live policy is an [`ArcSwap`] snapshot loaded once per request, so the hot path
//! takes no lock and a reload never disturbs requests already evaluating.

pub mod bundle;
pub mod decide;
pub mod decision;
pub mod engine;
pub mod reload;
pub mod replay;
pub mod testing;

use crate::config::PolicyConfig;
use crate::metrics::Metrics;
use anyhow::Result;
use arc_swap::ArcSwap;
use bundle::Bundle;
use engine::PreparedPolicy;
use std::sync::Arc;

/// The version of the input document policies are written against; bumped on any
/// incompatible change. The policy side owns it: the pipeline builds to it, and a bundle
/// is proven at load against an input of this version.
pub const INPUT_VERSION: u64 = 1;

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
    /// The bundle compiled but its own tests failed; the last good revision keeps
    /// serving.
    TestsFailed(String),
}

/// Why a bundle may not serve.
#[derive(Debug)]
enum Refused {
    Invalid(anyhow::Error),
    TestsFailed(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Invalid(e) => write!(f, "{e:#}"),
            Refused::TestsFailed(failures) => write!(f, "the bundle's tests failed: {failures}"),
        }
    }
}

impl PolicyStore {
    /// Loads the bundle at start-up. A bundle that cannot be loaded is an error: the
    /// proxy never starts without a policy.
    pub fn load(config: PolicyConfig, metrics: Metrics) -> Result<PolicyStore> {
        let bundle = Bundle::read_with_libraries(&config.dir, &config.library_dirs)?;
        let policy = prepare(&bundle, &config).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        let compiled = Bundle::read_with_libraries(&self.config.dir, &self.config.library_dirs)
            .map_err(Refused::Invalid)
            .and_then(|bundle| {
                if bundle.revision == active {
                    return Ok(None);
                }
                prepare(&bundle, &self.config).map(Some)
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
            Err(refused) => {
                let message = refused.to_string();
                let tests_failed = matches!(refused, Refused::TestsFailed(_));
                self.metrics.record_reload(Err(if tests_failed {
                    "tests_failed"
                } else {
                    "failure"
                }));
                tracing::error!(error = %message, serving = %active, "policy bundle rejected; the last good bundle keeps serving");
                match refused {
                    Refused::TestsFailed(_) => ReloadOutcome::TestsFailed(message),
                    Refused::Invalid(_) => ReloadOutcome::Rejected(message),
                }
            }
        }
    }
}

/// Compiles a bundle and, when required, runs its own tests: a bundle serves only if
/// it compiles, proves usable, and passes every test it ships.
fn prepare(bundle: &Bundle, config: &PolicyConfig) -> Result<PreparedPolicy, Refused> {
    let policy = PreparedPolicy::compile(bundle, &config.entrypoint, config.eval_timeout)
        .map_err(Refused::Invalid)?;
    if config.require_tests_pass && !bundle.tests.is_empty() {
        let results = testing::run(bundle).map_err(Refused::Invalid)?;
        let failures: Vec<String> = results
            .iter()
            .filter(|r| !r.passed())
            .map(|r| format!("{} ({})", r.rule, r.file))
            .collect();
        if !failures.is_empty() {
            return Err(Refused::TestsFailed(failures.join(", ")));
        }
    }
    Ok(policy)
}
