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
    #[serde(default)]
    pub dedup: RawDedup,
    #[serde(default)]
    pub admin: RawAdmin,
    /// Human approval of requests the policy marks; absent: such requests are refused.
    #[serde(default)]
    pub approvals: Option<RawApprovals>,
}

/// The approval queue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    /// The SQLite file holding the queue.
    pub store_path: PathBuf,
    #[serde(default = "default_approval_expiry_s")]
    pub expire_after_seconds: u64,
    /// Lines of `<approver name> <bearer token>`.
    #[serde(default)]
    pub approvers_file: Option<PathBuf>,
    /// JWTs with this role (in `roles`) may approve, when `jwt_audience` is set.
    #[serde(default = "default_approver_role")]
    pub approver_role: String,
    /// The audience approver JWTs must carry; required to accept JWT approvers, and
    /// never the identity audience (the agent holds tokens for that one).
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// The issuer approver JWTs must carry; default: `identity.issuer`.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// The key set approver JWTs are verified with; default: the identity key set.
    #[serde(default)]
    pub jwt_keys_file: Option<PathBuf>,
    #[serde(default = "default_max_wait_s")]
    pub max_wait_seconds: u64,
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    #[serde(default = "default_sweep_interval_ms")]
    pub sweep_interval_ms: u64,
    /// The admin port's address as approvers reach it, for links in notifications.
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub webhook: Option<RawWebhook>,
}

/// Where new pending approvals are announced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
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
    /// The identity provider's JWKS endpoint (https only), fetched in the background.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM CA certificates trusted for `jwks_url`, besides the public roots.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// How often the key set is fetched again; default 300.
    #[serde(default = "default_jwks_refresh_s")]
    pub jwks_refresh_seconds: u64,
    /// The least time between two fetches: a token with an unknown `kid` asks for one
    /// early, and a failed fetch is retried, no sooner than this; default 30.
    #[serde(default = "default_jwks_min_refresh_s")]
    pub jwks_min_refresh_seconds: u64,
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

/// Where dedup windows are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDedup {
    #[serde(default)]
    pub store: RawStoreKind,
    #[serde(default = "default_dedup_max_entries")]
    pub max_entries: usize,
    #[serde(default = "default_dedup_max_stored_bytes")]
    pub max_stored_bytes: usize,
    #[serde(default)]
    pub redis: Option<RawRedis>,
}

impl Default for RawDedup {
    fn default() -> Self {
        Self {
            store: RawStoreKind::Memory,
            max_entries: default_dedup_max_entries(),
            max_stored_bytes: default_dedup_max_stored_bytes(),
            redis: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawStoreKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
}

/// The admin port's own settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Bearer token required by the admin API's state-changing endpoints.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
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

/// `trace.format`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawTraceFormat {
    #[default]
    Lastmile,
    Opa,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    #[serde(default = "default_trace_output")]
    pub output: String,
    #[serde(default)]
    pub format: RawTraceFormat,
    #[serde(default = "default_ring_size")]
    pub ring_size: usize,
    #[serde(default)]
    pub include_body: bool,
    #[serde(default = "default_true")]
    pub include_input: bool,
    #[serde(default)]
    pub include_response_body: bool,
    #[serde(default = "default_response_body_limit")]
    pub response_body_limit: usize,
    #[serde(default = "default_user_claims")]
    pub user_claims: Vec<String>,
    #[serde(default = "default_redact_fields")]
    pub redact_fields: Vec<String>,
    /// OpenTelemetry export; absent: off.
    #[serde(default)]
    pub otlp: Option<crate::trace::otlp::RawOtlp>,
    #[serde(default)]
    pub decision_logs: Option<crate::trace::decision_log::RawDecisionLogs>,
}

impl Default for RawTrace {
    fn default() -> Self {
        Self {
            output: default_trace_output(),
            format: RawTraceFormat::default(),
            ring_size: default_ring_size(),
            include_body: false,
            include_input: true,
            include_response_body: false,
            response_body_limit: default_response_body_limit(),
            user_claims: default_user_claims(),
            redact_fields: default_redact_fields(),
            otlp: None,
            decision_logs: None,
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
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: default_header_read_timeout_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            max_connections: default_max_connections(),
            max_in_flight: default_max_in_flight(),
            max_concurrent_streams: default_max_concurrent_streams(),
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
fn default_jwks_refresh_s() -> u64 {
    300
}
fn default_jwks_min_refresh_s() -> u64 {
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
fn default_dedup_wait_ms() -> u64 {
    5_000
}
fn default_max_stored_body_bytes() -> usize {
    64 * 1024
}
fn default_client_key_window_s() -> u64 {
    24 * 60 * 60
}
fn default_dedup_max_entries() -> usize {
    100_000
}
fn default_dedup_max_stored_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_redis_prefix() -> String {
    "lastmile:dedup:".into()
}
fn default_redis_timeout_ms() -> u64 {
    500
}
fn default_approval_expiry_s() -> u64 {
    24 * 60 * 60
}
fn default_approver_role() -> String {
    "approver".into()
}
fn default_max_wait_s() -> u64 {
    60
}
fn default_max_response_bytes() -> usize {
    1024 * 1024
}
fn default_sweep_interval_ms() -> u64 {
    1_000
}
fn default_webhook_timeout_ms() -> u64 {
    5_000
}
fn default_webhook_attempts() -> u32 {
    5
}
fn default_trace_output() -> String {
    "stdout".into()
}
fn default_ring_size() -> usize {
    1024
}
fn default_response_body_limit() -> usize {
    16 * 1024
}
fn default_user_claims() -> Vec<String> {
    ["sub", "scope", "roles"].map(String::from).to_vec()
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
fn default_max_headers() -> usize {
    100
}
fn default_max_header_bytes() -> usize {
    32 * 1024
}
fn default_body_read_timeout_ms() -> u64 {
    30_000
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_in_flight() -> usize {
    256
}
fn default_max_concurrent_streams() -> u32 {
    100
}
fn default_shutdown_grace_ms() -> u64 {
    10_000
}
