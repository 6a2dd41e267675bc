//! Configuration in two stages: [`raw`] is what the operator wrote; [`Config`] is the
//! validated form holding ready objects. Code past start-up only sees [`Config`].
//!
//! Each section of the file is validated in its own module; this one ties them
//! together and holds the helpers they share.

mod approvals;
mod dedup;
mod identity;
mod policies;
pub mod raw;
mod reserved;
mod route;
mod server;
mod trace;

pub use approvals::{ApprovalConfig, ApproverJwtConfig, WebhookConfig};
pub use dedup::{DedupConfig, DedupStoreConfig, RedisSettings};
pub use identity::IdentityConfig;
pub use policies::PolicyConfig;
pub use reserved::{DATA_PREFIX, POLL_PATH, TRACES_PATH};
pub use route::{
    AssertionAlg, ClientAuth, CredentialConfig, CredentialSource, Mode, PerUserConfig, RouteConfig,
    RouteDedup, StaticCredentialConfig, TokenExchangeConfig, UpstreamTarget,
};
pub use server::ServerConfig;
pub use trace::{TraceConfig, TraceFormat, TraceOutput};

use anyhow::{Context, Result};
use raw::RawConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub policies: PolicyConfig,
    pub identity: Option<IdentityConfig>,
    pub routes: Vec<RouteConfig>,
    pub trace: TraceConfig,
    pub server: ServerConfig,
    pub dedup: DedupConfig,
    /// Bearer token file for the admin API's state-changing endpoints; without one,
    /// they are disabled.
    pub admin_token_file: Option<PathBuf>,
    /// The approval queue; `None`: requests needing approval are refused.
    pub approvals: Option<ApprovalConfig>,
}

impl Config {
    /// Reads and validates a YAML config file. Relative paths inside it are resolved
    /// against the file's own directory, so a config works from any working directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_yaml(&text, base).with_context(|| format!("in config file {}", path.display()))
    }

    /// Parses and validates YAML text; `base` anchors relative paths.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Config> {
        let raw: RawConfig = serde_yaml_ng::from_str(text)?;
        Config::validate(raw, base)
    }

    /// Validates section by section (each section's module owns its checks and error
    /// messages), then the checks that span sections.
    fn validate(raw: RawConfig, base: &Path) -> Result<Config> {
        let config = Config {
            listen: parse_addr("listen", &raw.listen)?,
            admin_listen: parse_addr("admin_listen", &raw.admin_listen)?,
            routes: route::validate_routes(raw.routes, base)?,
            policies: policies::validate_policies(raw.policies, base)?,
            identity: raw
                .identity
                .map(|i| identity::validate_identity(i, base))
                .transpose()?,
            trace: trace::validate_trace(raw.trace, base)?,
            server: server::validate_server(&raw.server)?,
            dedup: dedup::validate(raw.dedup)?,
            admin_token_file: raw.admin.token_file.map(|p| resolve(base, &p)),
            approvals: raw
                .approvals
                .map(|a| approvals::validate_approvals(a, base))
                .transpose()?,
        };
        approvals::check_approver_jwt(&config)?;
        check_user_credentials(&config)?;
        Ok(config)
    }
}

/// A user credential mode without identity would have no user to act for: every call
/// on the route would be refused, so the configuration is refused instead.
fn check_user_credentials(config: &Config) -> Result<()> {
    if config.identity.is_some() {
        return Ok(());
    }
    for route in &config.routes {
        if route
            .credential
            .as_ref()
            .is_some_and(CredentialConfig::is_per_user)
        {
            anyhow::bail!(
                "route {:?}: credential modes per_user and token_exchange act for the verified user; configure identity",
                route.name
            );
        }
    }
    Ok(())
}

fn parse_addr(field: &str, value: &str) -> Result<SocketAddr> {
    value
        .parse()
        .with_context(|| format!("{field}: {value:?} is not an IP:port socket address"))
}

/// Relative paths in the config are anchored at the config file's directory.
fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn parse_header_name(field: &str, value: &str) -> Result<http::HeaderName> {
    http::HeaderName::from_bytes(value.as_bytes())
        .with_context(|| format!("{field}: {value:?} is not a valid header name"))
}

#[cfg(test)]
mod tests;
