//! The `routes:` section: where each route's requests go, how they are matched, the
//! credential lastmile adds, and how the route applies dedup windows.

mod credential;
mod matching;

use super::raw::{RawMode, RawRoute, RawRouteDedup};
use super::{parse_header_name, resolve};
use anyhow::{bail, Context, Result};
use credential::validate_credential;
pub use credential::{
    AssertionAlg, ClientAuth, CredentialConfig, CredentialSource, PerUserConfig,
    StaticCredentialConfig, TokenExchangeConfig,
};
use http::uri::Scheme;
use matching::{check_unique_routes, normalise_prefix, opaque_content_type, parse_upstream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether a route's decisions are enforced or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry-run",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// Normalised path prefix (`/crm`), matched on segment boundaries.
    pub prefix: Option<String>,
    /// Lower-cased `host[:port]` values matched for absolute-form (HTTP_PROXY) requests.
    pub hosts: Vec<String>,
    pub upstream: UpstreamTarget,
    pub ca_file: Option<PathBuf>,
    pub credential: Option<CredentialConfig>,
    pub mode: Mode,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_body_bytes: usize,
    pub require_user: bool,
    pub dedup: RouteDedup,
    /// How long this route's approvals stay pending; `None`: the queue's default.
    pub approval_expire_after: Option<Duration>,
    /// The policy judges the method an override header names (and the request goes on).
    pub allow_method_override: bool,
    /// Lower-case content-type essences forwarded unread (`body_opaque: true`).
    pub opaque_content_types: Vec<String>,
}

/// How a route applies dedup windows.
#[derive(Debug, Clone)]
pub struct RouteDedup {
    /// How long a duplicate waits for an in-flight original before a 409.
    pub wait: Duration,
    /// How long an unknown outcome blocks duplicates; `None`: the rest of the window.
    pub unknown_hold: Option<Duration>,
    /// Responses up to this size are kept for replay.
    pub max_stored_body_bytes: usize,
    /// The window for an agent's `Idempotency-Key` when the policy names no intent.
    pub client_key_window: Duration,
    /// The upstream deduplicates on this header; lastmile sends its key there.
    pub upstream_idempotency_header: Option<http::HeaderName>,
}

/// Where a route's requests go: scheme, authority and a base path joined in front of
/// the request path.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub scheme: Scheme,
    pub authority: http::uri::Authority,
    /// Base path without a trailing slash (`""` for the root).
    pub base_path: String,
}

/// Validates every route, naming the failing one, then checks that no two of them
/// could claim the same request.
pub(super) fn validate_routes(raw: Vec<RawRoute>, base: &Path) -> Result<Vec<RouteConfig>> {
    if raw.is_empty() {
        bail!("routes: at least one route is required");
    }
    let mut routes = Vec::with_capacity(raw.len());
    for route in raw {
        let name = route.name.clone();
        routes.push(validate_route(route, base).with_context(|| format!("route {name:?}"))?);
    }
    check_unique_routes(&routes)?;
    Ok(routes)
}

/// Route names become metric labels, so they are kept to a small, safe alphabet.
fn check_route_name(name: &str) -> Result<()> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_name {
        bail!("name must be 1-64 characters of a-z, 0-9, '_' or '-' (it becomes a metric label)");
    }
    Ok(())
}

fn validate_route(raw: RawRoute, base: &Path) -> Result<RouteConfig> {
    check_route_name(&raw.name)?;
    let upstream = parse_upstream(&raw.upstream)?;
    let prefix = raw.prefix.as_deref().map(normalise_prefix).transpose()?;
    let mut hosts: Vec<String> = raw.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    if prefix.is_none() && hosts.is_empty() {
        hosts.push(upstream.authority.as_str().to_ascii_lowercase());
    }
    if raw.timeout_ms == 0 || raw.connect_timeout_ms == 0 {
        bail!("timeout_ms and connect_timeout_ms must be greater than zero");
    }
    Ok(RouteConfig {
        name: raw.name,
        prefix,
        hosts,
        upstream,
        ca_file: raw.ca_file.map(|p| resolve(base, &p)),
        credential: raw
            .credential
            .map(|c| validate_credential(c, base))
            .transpose()?,
        mode: match raw.mode {
            RawMode::Enforce => Mode::Enforce,
            RawMode::DryRun => Mode::DryRun,
        },
        timeout: Duration::from_millis(raw.timeout_ms),
        connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
        max_body_bytes: raw.max_body_bytes,
        require_user: raw.require_user,
        dedup: validate_route_dedup(raw.dedup)?,
        approval_expire_after: match raw.approval_expire_after_seconds {
            Some(0) => bail!("approval_expire_after_seconds must be greater than zero"),
            seconds => seconds.map(Duration::from_secs),
        },
        allow_method_override: raw.allow_method_override,
        opaque_content_types: raw
            .opaque_content_types
            .iter()
            .map(|t| opaque_content_type(t))
            .collect::<Result<_>>()?,
    })
}

fn validate_route_dedup(raw: RawRouteDedup) -> Result<RouteDedup> {
    if raw.client_key_window_seconds == 0 {
        bail!("dedup.client_key_window_seconds must be greater than zero");
    }
    Ok(RouteDedup {
        wait: Duration::from_millis(raw.wait_ms),
        unknown_hold: raw.unknown_hold_seconds.map(Duration::from_secs),
        max_stored_body_bytes: raw.max_stored_body_bytes,
        client_key_window: Duration::from_secs(raw.client_key_window_seconds),
        upstream_idempotency_header: raw
            .upstream_idempotency_header
            .as_deref()
            .map(|h| parse_header_name("dedup.upstream_idempotency_header", h))
            .transpose()?,
    })
}
