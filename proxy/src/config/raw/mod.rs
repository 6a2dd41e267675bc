//! What the operator wrote: the YAML config file as serde sees it.
//!
//! Every field has a documented default; unknown fields are an error so a typo never
//! silently turns a protection off. Each section lives in its own module, its
//! `default_*` functions next to it.

mod approvals;
mod dedup;
mod identity;
mod policies;
mod route;
mod server;
mod trace;

pub use approvals::{RawApprovals, RawWebhook};
pub use dedup::{RawDedup, RawRedis, RawStoreKind};
pub use identity::RawIdentity;
pub use policies::RawPolicies;
pub use route::{RawCredential, RawCredentialMode, RawMode, RawRoute, RawRouteDedup};
pub use server::RawServer;
pub use trace::{RawTrace, RawTraceFormat};

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

/// The admin port's own settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Bearer token required by the admin API's state-changing endpoints.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

fn default_listen() -> String {
    "127.0.0.1:15001".into()
}

fn default_admin_listen() -> String {
    "127.0.0.1:15002".into()
}

/// Shared by the sections whose switches default to on.
fn default_true() -> bool {
    true
}
