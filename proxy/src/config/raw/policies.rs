//! `policies:` as written: the Rego bundle and how it is evaluated and reloaded.

use super::default_true;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicies {
    pub dir: PathBuf,
    #[serde(default)]
    pub library_dirs: Vec<PathBuf>,
    #[serde(default = "default_entrypoint")]
    pub entrypoint: String,
    #[serde(default = "default_eval_timeout_ms")]
    pub eval_timeout_ms: u64,
    #[serde(default = "default_debounce_ms")]
    pub reload_debounce_ms: u64,
    #[serde(default = "default_poll_interval_s")]
    pub poll_interval_seconds: u64,
    #[serde(default = "default_true")]
    pub require_tests_pass: bool,
}

fn default_entrypoint() -> String {
    "data.lastmile.decision".into()
}
fn default_eval_timeout_ms() -> u64 {
    100
}
fn default_debounce_ms() -> u64 {
    200
}
fn default_poll_interval_s() -> u64 {
    30
}
