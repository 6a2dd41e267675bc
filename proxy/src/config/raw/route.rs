//! `routes:` as written: each route's upstream, credential, mode and dedup settings.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub upstream: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub credential: Option<RawCredential>,
    #[serde(default)]
    pub mode: RawMode,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub require_user: bool,
    #[serde(default)]
    pub dedup: RawRouteDedup,
    /// Overrides `approvals.expire_after_seconds` for this route.
    #[serde(default)]
    pub approval_expire_after_seconds: Option<u64>,
    /// Honour `X-HTTP-Method-Override` and its kin (the policy judges the effective
    /// method); default false: such headers are refused.
    #[serde(default)]
    pub allow_method_override: bool,
    /// Content types (essences) whose bodies are forwarded without the policy reading
    /// them; default none: such bodies are refused on enforce routes.
    #[serde(default)]
    pub opaque_content_types: Vec<String>,
}

/// How a route applies dedup windows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteDedup {
    #[serde(default = "default_dedup_wait_ms")]
    pub wait_ms: u64,
    #[serde(default)]
    pub unknown_hold_seconds: Option<u64>,
    #[serde(default = "default_max_stored_body_bytes")]
    pub max_stored_body_bytes: usize,
    #[serde(default = "default_client_key_window_s")]
    pub client_key_window_seconds: u64,
    #[serde(default)]
    pub upstream_idempotency_header: Option<String>,
}

impl Default for RawRouteDedup {
    fn default() -> Self {
        Self {
            wait_ms: default_dedup_wait_ms(),
            unknown_hold_seconds: None,
            max_stored_body_bytes: default_max_stored_body_bytes(),
            client_key_window_seconds: default_client_key_window_s(),
            upstream_idempotency_header: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawMode {
    #[default]
    Enforce,
    DryRun,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub header: String,
    #[serde(default)]
    pub value_file: Option<PathBuf>,
    #[serde(default)]
    pub value_env: Option<String>,
    #[serde(default)]
    pub prefix: String,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_dedup_wait_ms() -> u64 {
    5_000
}
fn default_max_stored_body_bytes() -> usize {
    64 * 1024
}
fn default_client_key_window_s() -> u64 {
    24 * 60 * 60
}
