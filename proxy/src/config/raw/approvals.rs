//! `approvals:` as written: the approval queue and its webhook.

use serde::Deserialize;
use std::path::PathBuf;

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
