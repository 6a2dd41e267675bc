//! What the operator wrote: the YAML config file as serde sees it.
//!
//! Every field has a documented default; unknown fields are an error so a typo never
//! silently turns a protection off.

use serde::Deserialize;
use std::path::PathBuf;

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    pub policies: RawPolicies,
    #[serde(default)]
    pub identity: Option<RawIdentity>,
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub trace: RawTrace,
    #[serde(default)]
    pub server: RawServer,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default = "default_identity_header")]
    pub header: String,
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    #[serde(default)]
    pub hs256_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default = "default_leeway_s")]
    pub leeway_seconds: u64,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    #[serde(default = "default_trace_output")]
    pub output: String,
    #[serde(default = "default_ring_size")]
    pub ring_size: usize,
    #[serde(default)]
    pub include_body: bool,
    #[serde(default = "default_redact_fields")]
    pub redact_fields: Vec<String>,
}

impl Default for RawTrace {
    fn default() -> Self {
        Self {
            output: default_trace_output(),
            ring_size: default_ring_size(),
            include_body: false,
            redact_fields: default_redact_fields(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: default_header_read_timeout_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:15001".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:15002".into()
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
fn default_true() -> bool {
    true
}
fn default_identity_header() -> String {
    "x-lastmile-user".into()
}
fn default_leeway_s() -> u64 {
    30
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
fn default_trace_output() -> String {
    "stdout".into()
}
fn default_ring_size() -> usize {
    1024
}
fn default_redact_fields() -> Vec<String> {
    [
        "password",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "authorization",
        "card_number",
        "cvv",
        "iban",
        "ssn",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
