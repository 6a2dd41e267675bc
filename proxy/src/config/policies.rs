//! The `policies:` section: where the Rego bundle lives and how it is evaluated and
//! reloaded.

use super::raw::RawPolicies;
use super::resolve;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the policy bundle is read from, and how it is evaluated and reloaded.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub dir: PathBuf,
    /// Shared Rego libraries loaded with the bundle and watched like it.
    pub library_dirs: Vec<PathBuf>,
    pub entrypoint: String,
    pub eval_timeout: Duration,
    pub reload_debounce: Duration,
    pub poll_interval: Duration,
    /// Run the bundle's own `*_test.rego` tests before it may serve.
    pub require_tests_pass: bool,
}

pub(super) fn validate_policies(p: RawPolicies, base: &Path) -> Result<PolicyConfig> {
    if p.eval_timeout_ms == 0 {
        bail!("policies.eval_timeout_ms must be greater than zero");
    }
    Ok(PolicyConfig {
        dir: resolve(base, &p.dir),
        library_dirs: p.library_dirs.iter().map(|d| resolve(base, d)).collect(),
        entrypoint: p.entrypoint,
        eval_timeout: Duration::from_millis(p.eval_timeout_ms),
        reload_debounce: Duration::from_millis(p.reload_debounce_ms),
        poll_interval: Duration::from_secs(p.poll_interval_seconds.max(1)),
        require_tests_pass: p.require_tests_pass,
    })
}
