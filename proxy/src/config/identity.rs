//! The `identity:` section: how the acting user's token is found and verified.

use super::raw::RawIdentity;
use super::{parse_header_name, resolve};
use anyhow::{bail, Context, Result};
use http::uri::{Scheme, Uri};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How acting-user tokens are verified. Every key source is optional (at least one is
/// set); a verifier uses the union of the keys they hold.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub header: http::HeaderName,
    /// JWKS or PEM public key(s), re-read when the file changes.
    pub keys_file: Option<PathBuf>,
    pub hs256_secret_file: Option<PathBuf>,
    /// When set, `iss` is required and must match.
    pub issuer: Option<String>,
    /// When set, `aud` is required and must match.
    pub audience: Option<String>,
    pub leeway: Duration,
    /// The IdP's JWKS endpoint; always `https`.
    pub jwks_url: Option<Uri>,
    /// Extra CA certificates (PEM) trusted for `jwks_url`.
    pub jwks_ca_file: Option<PathBuf>,
    /// The JWKS refresh schedule.
    pub jwks_refresh: Duration,
    /// The least time between two JWKS fetches (unknown-`kid` and retry rate limit).
    pub jwks_min_refresh: Duration,
}

pub(super) fn validate_identity(raw: RawIdentity, base: &Path) -> Result<IdentityConfig> {
    if raw.keys_file.is_none() && raw.hs256_secret_file.is_none() && raw.jwks_url.is_none() {
        bail!("identity: set keys_file, hs256_secret_file or jwks_url");
    }
    let jwks_url = raw.jwks_url.as_deref().map(parse_jwks_url).transpose()?;
    if jwks_url.is_none() && raw.jwks_ca_file.is_some() {
        bail!("identity.jwks_ca_file needs identity.jwks_url");
    }
    if raw.jwks_min_refresh_seconds == 0 || raw.jwks_min_refresh_seconds > raw.jwks_refresh_seconds
    {
        bail!(
            "identity.jwks_min_refresh_seconds must be at least 1 and at most identity.jwks_refresh_seconds ({})",
            raw.jwks_refresh_seconds
        );
    }
    Ok(IdentityConfig {
        header: parse_header_name("identity.header", &raw.header)?,
        keys_file: raw.keys_file.map(|p| resolve(base, &p)),
        hs256_secret_file: raw.hs256_secret_file.map(|p| resolve(base, &p)),
        issuer: raw.issuer,
        audience: raw.audience,
        leeway: Duration::from_secs(raw.leeway_seconds),
        jwks_url,
        jwks_ca_file: raw.jwks_ca_file.map(|p| resolve(base, &p)),
        jwks_refresh: Duration::from_secs(raw.jwks_refresh_seconds),
        jwks_min_refresh: Duration::from_secs(raw.jwks_min_refresh_seconds),
    })
}

/// Keys decide who may act, so they are only fetched over TLS, from a plain host.
fn parse_jwks_url(value: &str) -> Result<Uri> {
    let url: Uri = value
        .parse()
        .with_context(|| format!("identity.jwks_url: {value:?} is not a URL"))?;
    let plain_host = url
        .authority()
        .is_some_and(|a| !a.as_str().contains('@') && !a.host().is_empty());
    if url.scheme() != Some(&Scheme::HTTPS) || !plain_host {
        bail!(
            "identity.jwks_url: {value:?} must be an https:// URL with a host (and no user info)"
        );
    }
    Ok(url)
}
