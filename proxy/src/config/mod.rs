//! Configuration in two stages: [`raw`] is what the operator wrote; [`Config`] is the
//! validated form holding ready objects. Code past start-up only sees [`Config`].

mod dedup;
pub mod raw;
mod reserved;

pub use dedup::{DedupConfig, DedupStoreConfig, RedisSettings};
pub use reserved::{DATA_PREFIX, POLL_PATH, TRACES_PATH};

use anyhow::{bail, Context, Result};
use http::uri::{Scheme, Uri};
use raw::{RawApprovals, RawConfig, RawCredential, RawIdentity, RawMode, RawRoute, RawRouteDedup};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Where dedup windows are kept, and how much they may hold.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub dir: PathBuf,
    /// Shared Rego libraries loaded with the bundle and watched like it.
    pub library_dirs: Vec<PathBuf>,
    pub entrypoint: String,
    pub eval_timeout: Duration,
    pub reload_debounce: Duration,
    pub poll_interval: Duration,
    /// Run the bundle's own `*_test.rego` tests before it may serve.
    pub require_tests_pass: bool,
}

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

#[derive(Debug, Clone)]
pub struct CredentialConfig {
    pub header: http::HeaderName,
    pub source: CredentialSource,
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub enum CredentialSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub struct TraceConfig {
    pub output: TraceOutput,
    pub format: TraceFormat,
    pub ring_size: usize,
    pub include_body: bool,
    /// Record the policy's input document (redacted) with each call.
    pub include_input: bool,
    /// Record the upstream's JSON body (redacted) up to `response_body_limit`.
    pub include_response_body: bool,
    pub response_body_limit: usize,
    /// The acting user's claims each record names.
    pub user_claims: Vec<String>,
    pub redact_fields: Vec<String>,
    /// OpenTelemetry export of every record as a span; `None`: off.
    pub otlp: Option<crate::trace::otlp::OtlpConfig>,
    /// Upload of every record as an OPA decision-log event; `None`: off.
    pub decision_logs: Option<crate::trace::decision_log::DecisionLogConfig>,
}

/// How records are written: lastmile's own records, or OPA decision-log events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    Lastmile,
    Opa,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceOutput {
    Stdout,
    Off,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    /// More request headers than this: 431.
    pub max_headers: usize,
    /// The request head (line and headers) may not exceed this: 431.
    pub max_header_bytes: usize,
    /// The whole request body must arrive within this: 408.
    pub body_read_timeout: Duration,
    /// At this many open connections, lastmile stops accepting until one closes.
    pub max_connections: usize,
    /// At this many requests in progress, new ones are refused: 503.
    pub max_in_flight: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
}

/// hyper's HTTP/1 read buffer has this minimum; a smaller header limit cannot be set.
const MIN_HEADER_BYTES: usize = 8192;

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

    fn validate(raw: RawConfig, base: &Path) -> Result<Config> {
        let listen = parse_addr("listen", &raw.listen)?;
        let admin_listen = parse_addr("admin_listen", &raw.admin_listen)?;
        if raw.routes.is_empty() {
            bail!("routes: at least one route is required");
        }
        let mut routes = Vec::with_capacity(raw.routes.len());
        for route in raw.routes {
            let name = route.name.clone();
            routes.push(validate_route(route, base).with_context(|| format!("route {name:?}"))?);
        }
        check_unique_routes(&routes)?;
        let p = raw.policies;
        if p.eval_timeout_ms == 0 {
            bail!("policies.eval_timeout_ms must be greater than zero");
        }
        let config = Config {
            listen,
            admin_listen,
            policies: PolicyConfig {
                dir: resolve(base, &p.dir),
                library_dirs: p.library_dirs.iter().map(|d| resolve(base, d)).collect(),
                entrypoint: p.entrypoint,
                eval_timeout: Duration::from_millis(p.eval_timeout_ms),
                reload_debounce: Duration::from_millis(p.reload_debounce_ms),
                poll_interval: Duration::from_secs(p.poll_interval_seconds.max(1)),
                require_tests_pass: p.require_tests_pass,
            },
            identity: raw
                .identity
                .map(|i| validate_identity(i, base))
                .transpose()?,
            routes,
            trace: TraceConfig {
                output: match raw.trace.output.as_str() {
                    "stdout" => TraceOutput::Stdout,
                    "off" => TraceOutput::Off,
                    path => TraceOutput::File(resolve(base, Path::new(path))),
                },
                format: match raw.trace.format {
                    raw::RawTraceFormat::Lastmile => TraceFormat::Lastmile,
                    raw::RawTraceFormat::Opa => TraceFormat::Opa,
                },
                ring_size: raw.trace.ring_size,
                include_body: raw.trace.include_body,
                include_input: raw.trace.include_input,
                include_response_body: raw.trace.include_response_body,
                response_body_limit: raw.trace.response_body_limit,
                user_claims: raw.trace.user_claims.clone(),
                redact_fields: raw
                    .trace
                    .redact_fields
                    .iter()
                    .map(|f| f.to_ascii_lowercase())
                    .collect(),
                otlp: raw
                    .trace
                    .otlp
                    .map(crate::trace::otlp::validate)
                    .transpose()?,
                decision_logs: raw
                    .trace
                    .decision_logs
                    .map(crate::trace::decision_log::validate)
                    .transpose()?,
            },
            server: validate_server(&raw.server)?,
            dedup: dedup::validate(raw.dedup)?,
            admin_token_file: raw.admin.token_file.map(|p| resolve(base, &p)),
            approvals: raw
                .approvals
                .map(|a| validate_approvals(a, base))
                .transpose()?,
        };
        check_approver_jwt(&config)?;
        Ok(config)
    }
}

/// Approver JWTs are told from the user tokens the agent carries by their audience
/// alone: sharing the identity audience would let the agent approve with a user's token.
fn check_approver_jwt(config: &Config) -> Result<()> {
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

fn parse_addr(field: &str, value: &str) -> Result<SocketAddr> {
    value
        .parse()
        .with_context(|| format!("{field}: {value:?} is not an IP:port socket address"))
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn validate_identity(raw: RawIdentity, base: &Path) -> Result<IdentityConfig> {
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

fn parse_header_name(field: &str, value: &str) -> Result<http::HeaderName> {
    http::HeaderName::from_bytes(value.as_bytes())
        .with_context(|| format!("{field}: {value:?} is not a valid header name"))
}

fn validate_route(raw: RawRoute, base: &Path) -> Result<RouteConfig> {
    let valid_name = !raw.name.is_empty()
        && raw.name.len() <= 64
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid_name {
        bail!("name must be 1-64 characters of a-z, 0-9, '_' or '-' (it becomes a metric label)");
    }
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

/// A media type the route forwards unread, lower-cased: `type/subtype` only (matched on
/// the essence), and neither JSON nor a form, which lastmile always parses.
fn opaque_content_type(value: &str) -> Result<String> {
    let essence = value.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if !essence
        .split_once('/')
        .is_some_and(|(t, s)| token(t) && token(s))
    {
        bail!("opaque_content_types: {value:?} is not a type/subtype media type (no parameters or wildcards)");
    }
    if crate::headers::parsed_media_type(&essence) {
        bail!(
            "opaque_content_types: {value:?} is always parsed for the policy; it cannot be opaque"
        );
    }
    Ok(essence)
}

fn validate_approvals(raw: RawApprovals, base: &Path) -> Result<ApprovalConfig> {
    if raw.expire_after_seconds == 0 {
        bail!("approvals.expire_after_seconds must be greater than zero");
    }
    if raw.approver_role.is_empty() {
        bail!("approvals.approver_role must not be empty");
    }
    let approver_jwt = match raw.jwt_audience {
        Some(audience) if !audience.is_empty() => Some(ApproverJwtConfig {
            audience,
            issuer: raw.jwt_issuer,
            keys_file: raw.jwt_keys_file.map(|p| resolve(base, &p)),
        }),
        Some(_) => bail!("approvals.jwt_audience must not be empty"),
        None if raw.jwt_issuer.is_some() || raw.jwt_keys_file.is_some() => {
            bail!("approvals.jwt_issuer and approvals.jwt_keys_file need approvals.jwt_audience")
        }
        None => None,
    };
    let webhook = raw
        .webhook
        .map(|w| {
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
        })
        .transpose()?;
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

fn validate_server(raw: &raw::RawServer) -> Result<ServerConfig> {
    if raw.max_header_bytes < MIN_HEADER_BYTES {
        bail!("server.max_header_bytes must be at least {MIN_HEADER_BYTES}");
    }
    if raw.max_headers == 0 || raw.max_connections == 0 || raw.max_in_flight == 0 {
        bail!("server.max_headers, max_connections and max_in_flight must be greater than zero");
    }
    if raw.max_concurrent_streams == 0
        || raw.header_read_timeout_ms == 0
        || raw.body_read_timeout_ms == 0
    {
        bail!("server.max_concurrent_streams and the read timeouts must be greater than zero");
    }
    Ok(ServerConfig {
        header_read_timeout: Duration::from_millis(raw.header_read_timeout_ms),
        shutdown_grace: Duration::from_millis(raw.shutdown_grace_ms),
        max_headers: raw.max_headers,
        max_header_bytes: raw.max_header_bytes,
        body_read_timeout: Duration::from_millis(raw.body_read_timeout_ms),
        max_connections: raw.max_connections,
        max_in_flight: raw.max_in_flight,
        max_concurrent_streams: raw.max_concurrent_streams,
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

fn parse_upstream(value: &str) -> Result<UpstreamTarget> {
    let uri: Uri = value
        .parse()
        .with_context(|| format!("upstream {value:?} is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => bail!("upstream {value:?} must start with http:// or https://"),
    };
    let Some(authority) = uri.authority().cloned() else {
        bail!("upstream {value:?} has no host");
    };
    if uri.query().is_some() {
        bail!("upstream {value:?} must not carry a query string");
    }
    Ok(UpstreamTarget {
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

fn normalise_prefix(prefix: &str) -> Result<String> {
    if !prefix.starts_with('/') {
        bail!("prefix {prefix:?} must start with '/'");
    }
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        bail!("prefix {prefix:?} must name at least one path segment");
    }
    if trimmed
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        bail!("prefix {prefix:?} has an empty, '.' or '..' segment");
    }
    // The data port answers approval polls there itself.
    if trimmed == DATA_PREFIX || trimmed.starts_with(&format!("{DATA_PREFIX}/")) {
        bail!("prefix {prefix:?} is reserved for lastmile's own endpoints");
    }
    Ok(trimmed.to_string())
}

fn validate_credential(raw: RawCredential, base: &Path) -> Result<CredentialConfig> {
    let source = match (raw.value_file, raw.value_env) {
        (Some(file), None) => CredentialSource::File(resolve(base, &file)),
        (None, Some(env)) => CredentialSource::Env(env),
        _ => bail!("credential: set exactly one of value_file or value_env"),
    };
    Ok(CredentialConfig {
        header: parse_header_name("credential.header", &raw.header)?,
        source,
        prefix: raw.prefix,
    })
}

fn check_unique_routes(routes: &[RouteConfig]) -> Result<()> {
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            if a.name == b.name {
                bail!("route name {:?} is used twice", a.name);
            }
            if a.prefix.is_some() && a.prefix == b.prefix {
                bail!(
                    "routes {:?} and {:?} share the prefix {:?}",
                    a.name,
                    b.name,
                    a.prefix
                );
            }
            if let Some(host) = a.hosts.iter().find(|h| b.hosts.contains(h)) {
                bail!(
                    "routes {:?} and {:?} share the host {host:?}",
                    a.name,
                    b.name
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
