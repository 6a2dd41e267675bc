//! `routes[].credential`: what lastmile puts in the upstream request in the agent's
//! place. `static` is one service credential; the user modes carry the acting user's
//! own authorization and never fall back to a service credential.

use super::super::raw::{RawCredential, RawCredentialMode};
use super::super::{parse_header_name, resolve};
use anyhow::{bail, Context, Result};
use http::{HeaderName, Uri};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_EXCHANGE_TIMEOUT_MS: u64 = 5_000;

/// A route's validated credential.
#[derive(Debug, Clone)]
pub enum CredentialConfig {
    Static(StaticCredentialConfig),
    PerUser(PerUserConfig),
    TokenExchange(Box<TokenExchangeConfig>),
}

impl CredentialConfig {
    /// Whether the credential depends on the acting user (so the route needs identity).
    pub fn is_per_user(&self) -> bool {
        !matches!(self, CredentialConfig::Static(_))
    }
}

/// One service credential from a file or an environment variable.
#[derive(Debug, Clone)]
pub struct StaticCredentialConfig {
    pub header: HeaderName,
    pub source: CredentialSource,
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub enum CredentialSource {
    File(PathBuf),
    Env(String),
}

/// One file per user in `dir`, named by the user's `claim`.
#[derive(Debug, Clone)]
pub struct PerUserConfig {
    pub header: HeaderName,
    pub prefix: String,
    pub dir: PathBuf,
    pub claim: String,
}

/// How lastmile authenticates to the token endpoint as its client.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret_basic`: the secret read from this file for each exchange.
    SecretBasic(PathBuf),
    /// `private_key_jwt` (RFC 7523 §2.2): an assertion signed with the PEM key read
    /// from `key_file` for each exchange.
    PrivateKeyJwt {
        key_file: PathBuf,
        alg: AssertionAlg,
        kid: Option<String>,
    },
}

/// The client assertion's signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAlg {
    Rs256,
    Es256,
}

/// RFC 8693 token exchange at the identity provider.
#[derive(Debug, Clone)]
pub struct TokenExchangeConfig {
    pub header: HeaderName,
    pub prefix: String,
    pub token_endpoint: Uri,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
    /// The full URN sent as `subject_token_type`.
    pub subject_token_type: &'static str,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// Validates `credential:`, refusing fields that do not belong to its mode so a typo'd
/// mode cannot silently leave a route on a service credential.
pub(in crate::config) fn validate_credential(
    raw: RawCredential,
    base: &Path,
) -> Result<CredentialConfig> {
    match raw.mode {
        RawCredentialMode::Static => validate_static(raw, base).map(CredentialConfig::Static),
        RawCredentialMode::PerUser => validate_per_user(raw, base).map(CredentialConfig::PerUser),
        RawCredentialMode::TokenExchange => {
            validate_exchange(raw, base).map(|c| CredentialConfig::TokenExchange(Box::new(c)))
        }
    }
}

/// Refuses the fields that belong to another mode. One table says which mode uses each
/// mode-specific field (`header` and `prefix` serve them all).
fn refuse_foreign_fields(raw: &RawCredential, mode: &str) -> Result<()> {
    const EXCHANGE: &str = "token_exchange";
    let fields: [(&str, bool, &str); 16] = [
        ("value_file", raw.value_file.is_some(), "static"),
        ("value_env", raw.value_env.is_some(), "static"),
        ("dir", raw.dir.is_some(), "per_user"),
        ("claim", raw.claim.is_some(), "per_user"),
        ("token_endpoint", raw.token_endpoint.is_some(), EXCHANGE),
        ("client_id", raw.client_id.is_some(), EXCHANGE),
        (
            "client_secret_file",
            raw.client_secret_file.is_some(),
            EXCHANGE,
        ),
        (
            "client_assertion_key_file",
            raw.client_assertion_key_file.is_some(),
            EXCHANGE,
        ),
        (
            "client_assertion_alg",
            raw.client_assertion_alg.is_some(),
            EXCHANGE,
        ),
        (
            "client_assertion_kid",
            raw.client_assertion_kid.is_some(),
            EXCHANGE,
        ),
        ("audience", raw.audience.is_some(), EXCHANGE),
        ("resource", raw.resource.is_some(), EXCHANGE),
        ("scope", raw.scope.is_some(), EXCHANGE),
        (
            "subject_token_type",
            raw.subject_token_type.is_some(),
            EXCHANGE,
        ),
        ("ca_file", raw.ca_file.is_some(), EXCHANGE),
        ("timeout_ms", raw.timeout_ms.is_some(), EXCHANGE),
    ];
    let foreign: Vec<&str> = fields
        .iter()
        .filter(|(_, set, owner)| *set && *owner != mode)
        .map(|(name, _, _)| *name)
        .collect();
    if !foreign.is_empty() {
        let foreign = foreign.join(", ");
        bail!("credential: {foreign} not used with mode {mode}");
    }
    Ok(())
}

fn user_header(raw: &RawCredential) -> Result<(HeaderName, String)> {
    let header = match &raw.header {
        Some(h) => parse_header_name("credential.header", h)?,
        None => http::header::AUTHORIZATION,
    };
    Ok((
        header,
        raw.prefix.clone().unwrap_or_else(|| "Bearer ".into()),
    ))
}

fn validate_static(raw: RawCredential, base: &Path) -> Result<StaticCredentialConfig> {
    refuse_foreign_fields(&raw, "static")?;
    let source = match (raw.value_file, raw.value_env) {
        (Some(file), None) => CredentialSource::File(resolve(base, &file)),
        (None, Some(env)) => CredentialSource::Env(env),
        _ => bail!("credential: set exactly one of value_file or value_env"),
    };
    let Some(header) = raw.header else {
        bail!("credential.header is required with mode static");
    };
    Ok(StaticCredentialConfig {
        header: parse_header_name("credential.header", &header)?,
        source,
        prefix: raw.prefix.unwrap_or_default(),
    })
}

fn validate_per_user(raw: RawCredential, base: &Path) -> Result<PerUserConfig> {
    refuse_foreign_fields(&raw, "per_user")?;
    let (header, prefix) = user_header(&raw)?;
    let Some(dir) = raw.dir else {
        bail!("credential.dir is required with mode per_user");
    };
    let claim = raw.claim.unwrap_or_else(|| "sub".into());
    if claim.is_empty() {
        bail!("credential.claim may not be empty");
    }
    Ok(PerUserConfig {
        header,
        prefix,
        dir: resolve(base, &dir),
        claim,
    })
}

fn validate_exchange(raw: RawCredential, base: &Path) -> Result<TokenExchangeConfig> {
    refuse_foreign_fields(&raw, "token_exchange")?;
    let (header, prefix) = user_header(&raw)?;
    let client_auth = client_auth(&raw, base)?;
    let Some(endpoint) = raw.token_endpoint else {
        bail!("credential.token_endpoint is required with mode token_exchange");
    };
    let token_endpoint = token_endpoint(&endpoint).context("credential.token_endpoint")?;
    let Some(client_id) = raw.client_id.filter(|c| !c.is_empty()) else {
        bail!("credential.client_id is required with mode token_exchange");
    };
    let subject_token_type = match raw.subject_token_type.as_deref() {
        None | Some("access_token") => "urn:ietf:params:oauth:token-type:access_token",
        Some("jwt") => "urn:ietf:params:oauth:token-type:jwt",
        Some(other) => {
            bail!("credential.subject_token_type must be access_token or jwt, not {other:?}")
        }
    };
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_EXCHANGE_TIMEOUT_MS);
    if timeout_ms == 0 {
        bail!("credential.timeout_ms must be greater than zero");
    }
    Ok(TokenExchangeConfig {
        header,
        prefix,
        token_endpoint,
        client_id,
        client_auth,
        audience: raw.audience,
        resource: raw.resource,
        scope: raw.scope,
        subject_token_type,
        ca_file: raw.ca_file.map(|p| resolve(base, &p)),
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// Exactly one of `client_secret_file` or `client_assertion_key_file`; the assertion's
/// `alg` is required with a key (a PKCS#8 PEM does not say which algorithm it is for).
fn client_auth(raw: &RawCredential, base: &Path) -> Result<ClientAuth> {
    match (&raw.client_secret_file, &raw.client_assertion_key_file) {
        (Some(secret), None) => {
            if raw.client_assertion_alg.is_some() || raw.client_assertion_kid.is_some() {
                bail!(
                    "credential: client_assertion_alg and client_assertion_kid are used only \
                     with client_assertion_key_file"
                );
            }
            Ok(ClientAuth::SecretBasic(resolve(base, secret)))
        }
        (None, Some(key)) => {
            let alg = match raw.client_assertion_alg.as_deref() {
                Some("RS256") => AssertionAlg::Rs256,
                Some("ES256") => AssertionAlg::Es256,
                Some(other) => {
                    bail!("credential.client_assertion_alg must be RS256 or ES256, not {other:?}")
                }
                None => bail!(
                    "credential.client_assertion_alg (RS256 or ES256) is required with \
                     client_assertion_key_file"
                ),
            };
            Ok(ClientAuth::PrivateKeyJwt {
                key_file: resolve(base, key),
                alg,
                kid: raw.client_assertion_kid.clone(),
            })
        }
        _ => bail!(
            "credential: set exactly one of client_secret_file or client_assertion_key_file \
             with mode token_exchange"
        ),
    }
}

/// The user's token travels to the endpoint, so it must be https; plain http is allowed
/// only to a loopback address (an identity provider's agent on the same host, or tests).
fn token_endpoint(text: &str) -> Result<Uri> {
    let uri: Uri = text.parse().context("not a URL")?;
    let Some(host) = uri.host() else {
        bail!("{text:?} has no host");
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        bail!("{text:?} may not carry user info");
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => bail!(
            "{text:?} must be https (plain http only to a loopback address): the user's token is sent there"
        ),
        _ => bail!("{text:?} must be an https URL"),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_is_https_or_loopback_http() {
        assert!(token_endpoint("https://idp.example.com/token").is_ok());
        assert!(token_endpoint("http://127.0.0.1:8080/token").is_ok());
        assert!(token_endpoint("http://[::1]:8080/token").is_ok());
        assert!(token_endpoint("http://localhost/token").is_ok());
        assert!(token_endpoint("http://idp.example.com/token").is_err());
        assert!(token_endpoint("https://u:p@idp.example.com/token").is_err());
        assert!(token_endpoint("ftp://idp.example.com/token").is_err());
    }

    fn validate(yaml: &str) -> Result<CredentialConfig> {
        let raw: RawCredential = serde_yaml_ng::from_str(yaml)?;
        validate_credential(raw, Path::new("/etc/lastmile"))
    }

    fn error(yaml: &str) -> String {
        validate(yaml)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    #[test]
    fn modes_take_their_own_fields_with_documented_defaults() -> Result<()> {
        let CredentialConfig::PerUser(c) = validate("{mode: per_user, dir: users}")? else {
            bail!("not per_user");
        };
        assert_eq!(c.dir, PathBuf::from("/etc/lastmile/users"));
        assert_eq!((c.claim.as_str(), c.prefix.as_str()), ("sub", "Bearer "));
        assert_eq!(c.header, http::header::AUTHORIZATION);
        let exchange = "{mode: token_exchange, token_endpoint: 'https://idp/token', \
                        client_id: lastmile, client_secret_file: s, audience: crm}";
        let CredentialConfig::TokenExchange(c) = validate(exchange)? else {
            bail!("not token_exchange");
        };
        assert_eq!(c.audience.as_deref(), Some("crm"));
        assert_eq!(
            c.timeout,
            Duration::from_millis(DEFAULT_EXCHANGE_TIMEOUT_MS)
        );
        assert!(c.subject_token_type.ends_with(":access_token"));
        assert!(matches!(
            validate("{header: x-api-key, value_env: K}")?,
            CredentialConfig::Static(_)
        ));
        Ok(())
    }

    #[test]
    fn fields_of_another_mode_and_missing_fields_are_errors() {
        assert!(error("{mode: per_user, dir: d, value_file: f}").contains("value_file"));
        assert!(error("{mode: per_user}").contains("credential.dir"));
        assert!(error("{header: a, value_env: K, dir: d}").contains("dir"));
        assert!(
            error("{mode: token_exchange, client_id: c, client_secret_file: s}")
                .contains("token_endpoint")
        );
        assert!(error(
            "{mode: token_exchange, token_endpoint: 'http://idp.example.com/t', client_id: c, client_secret_file: s}"
        )
        .contains("https"));
        assert!(error(
            "{mode: token_exchange, token_endpoint: 'https://i/t', client_secret_file: s}"
        )
        .contains("client_id"));
        assert!(
            error("{mode: token_exchange, token_endpoint: 'https://i/t', client_id: c}")
                .contains("client_secret_file")
        );
        assert!(validate("{mode: per_users, dir: d}").is_err());
        assert!(validate("{mode: per_user, dir: d, clam: sub}").is_err());
    }

    #[test]
    fn token_exchange_takes_exactly_one_client_authentication() {
        let base = "{mode: token_exchange, token_endpoint: 'https://i/t', client_id: c";
        let both = error(&format!(
            "{base}, client_secret_file: s, client_assertion_key_file: k, client_assertion_alg: ES256}}"
        ));
        assert!(both.contains("client_secret_file") && both.contains("client_assertion_key_file"));
        assert!(error(&format!("{base}, client_assertion_key_file: k}}"))
            .contains("client_assertion_alg"));
        assert!(error(&format!(
            "{base}, client_assertion_key_file: k, client_assertion_alg: HS256}}"
        ))
        .contains("RS256 or ES256"));
        assert!(error(&format!(
            "{base}, client_secret_file: s, client_assertion_alg: RS256}}"
        ))
        .contains("client_assertion_key_file"));
        assert!(validate(&format!(
            "{base}, client_assertion_key_file: k, client_assertion_alg: RS256, client_assertion_kid: x}}"
        ))
        .is_ok());
        assert!(
            error("{header: a, value_env: K, client_assertion_key_file: k}")
                .contains("client_assertion_key_file")
        );
    }
}
