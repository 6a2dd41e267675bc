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

/// `credential:` as written. One struct for every mode, so an unknown field is still an
/// error; validation checks that each field belongs to the chosen `mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    #[serde(default)]
    pub mode: RawCredentialMode,
    /// Default `authorization` for the user modes; required for `static`.
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub value_file: Option<PathBuf>,
    #[serde(default)]
    pub value_env: Option<String>,
    /// Default `""` for `static`, `"Bearer "` for the user modes.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `per_user`: the directory holding one file per user.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `per_user`: the claim naming the user's file (default `sub`).
    #[serde(default)]
    pub claim: Option<String>,
    /// `token_exchange`: the identity provider's token endpoint.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// `token_exchange`: a PEM private key for `private_key_jwt` client authentication.
    #[serde(default)]
    pub client_assertion_key_file: Option<PathBuf>,
    /// `token_exchange`: `RS256` or `ES256`, the key's algorithm.
    #[serde(default)]
    pub client_assertion_alg: Option<String>,
    /// `token_exchange`: the `kid` header of the client assertion.
    #[serde(default)]
    pub client_assertion_kid: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// `token_exchange`: `access_token` (default) or `jwt`.
    #[serde(default)]
    pub subject_token_type: Option<String>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `token_exchange`: how long one exchange may take (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawCredentialMode {
    #[default]
    Static,
    PerUser,
    TokenExchange,
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
