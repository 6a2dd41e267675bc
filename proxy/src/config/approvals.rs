//! The `approvals:` section: the approval queue, who may approve, and where new
//! pending approvals are announced.

use super::raw::{RawApprovals, RawWebhook};
use super::{resolve, Config};
use anyhow::{bail, Context, Result};
use http::uri::Uri;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The approval queue's settings.
#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    pub store_path: PathBuf,
    pub expire_after: Duration,
    pub approvers_file: Option<PathBuf>,
    pub approver_role: String,
    /// How approver JWTs are told from user tokens; `None`: JWTs never approve.
    pub approver_jwt: Option<ApproverJwtConfig>,
    /// The longest `?wait=` an agent's poll may ask for.
    pub max_wait: Duration,
    /// Upstream responses to executed approvals are kept up to this size.
    pub max_response_bytes: usize,
    pub sweep_interval: Duration,
    /// Base URL of the admin port for links (no trailing slash).
    pub public_url: Option<String>,
    pub webhook: Option<WebhookConfig>,
}

/// Approver JWTs: their own audience (never the identity audience), and optionally
/// their own issuer and key set.
#[derive(Debug, Clone)]
pub struct ApproverJwtConfig {
    pub audience: String,
    pub issuer: Option<String>,
    pub keys_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Uri,
    pub timeout: Duration,
    pub max_attempts: u32,
}

pub(super) fn validate_approvals(raw: RawApprovals, base: &Path) -> Result<ApprovalConfig> {
    if raw.expire_after_seconds == 0 {
        bail!("approvals.expire_after_seconds must be greater than zero");
    }
    if raw.approver_role.is_empty() {
        bail!("approvals.approver_role must not be empty");
    }
    let approver_jwt = validate_approver_jwt(&raw, base)?;
    let webhook = raw.webhook.map(validate_webhook).transpose()?;
    Ok(ApprovalConfig {
        store_path: resolve(base, &raw.store_path),
        expire_after: Duration::from_secs(raw.expire_after_seconds),
        approvers_file: raw.approvers_file.map(|p| resolve(base, &p)),
        approver_role: raw.approver_role,
        approver_jwt,
        max_wait: Duration::from_secs(raw.max_wait_seconds),
        max_response_bytes: raw.max_response_bytes,
        sweep_interval: Duration::from_millis(raw.sweep_interval_ms.max(10)),
        public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_string()),
        webhook,
    })
}

/// The JWT settings only mean something together: an issuer or key set without an
/// audience would never be used, so it is an error rather than silently ignored.
fn validate_approver_jwt(raw: &RawApprovals, base: &Path) -> Result<Option<ApproverJwtConfig>> {
    Ok(match &raw.jwt_audience {
        Some(audience) if !audience.is_empty() => Some(ApproverJwtConfig {
            audience: audience.clone(),
            issuer: raw.jwt_issuer.clone(),
            keys_file: raw.jwt_keys_file.as_ref().map(|p| resolve(base, p)),
        }),
        Some(_) => bail!("approvals.jwt_audience must not be empty"),
        None if raw.jwt_issuer.is_some() || raw.jwt_keys_file.is_some() => {
            bail!("approvals.jwt_issuer and approvals.jwt_keys_file need approvals.jwt_audience")
        }
        None => None,
    })
}

fn validate_webhook(w: RawWebhook) -> Result<WebhookConfig> {
    let url: Uri = w
        .url
        .parse()
        .with_context(|| format!("approvals.webhook.url {:?} is not a URL", w.url))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.authority().is_none() {
        bail!("approvals.webhook.url must be an http:// or https:// URL");
    }
    if w.timeout_ms == 0 || w.max_attempts == 0 {
        bail!("approvals.webhook: timeout_ms and max_attempts must be greater than zero");
    }
    Ok(WebhookConfig {
        url,
        timeout: Duration::from_millis(w.timeout_ms),
        max_attempts: w.max_attempts,
    })
}

/// Approver JWTs are told from the user tokens the agent carries by their audience
/// alone: sharing the identity audience would let the agent approve with a user's token.
pub(super) fn check_approver_jwt(config: &Config) -> Result<()> {
    let Some(jwt) = config
        .approvals
        .as_ref()
        .and_then(|a| a.approver_jwt.as_ref())
    else {
        return Ok(());
    };
    let Some(identity) = &config.identity else {
        bail!(
            "approvals.jwt_audience needs identity: approver JWTs are verified with its settings"
        );
    };
    if identity.audience.as_deref() == Some(jwt.audience.as_str()) {
        bail!(
            "approvals.jwt_audience must differ from identity.audience: the agent holds user tokens for that audience, so it could approve its own requests"
        );
    }
    Ok(())
}
