//! `trace.otlp`: where spans are exported and with which headers. The headers usually
//! carry a collector's API key, so their values are secrets: they are marked sensitive,
//! never printed by `Debug`, and never named in an error (only the header or variable is).

use anyhow::{bail, Context, Result};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What the operator wrote under `trace.otlp`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// The full URL of the collector's traces endpoint (`.../v1/traces`).
    pub endpoint: String,
    /// Extra request headers, e.g. an API key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra request headers whose values are read from environment variables
    /// (header name -> variable name), so a key need not sit in the config file.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl fmt::Debug for RawOtlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawOtlp")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("headers_env", &self.headers_env)
            .field("timeout_ms", &self.timeout_ms)
            .field("service_name", &self.service_name)
            .finish()
    }
}

/// The validated export settings.
#[derive(Clone)]
pub struct OtlpConfig {
    pub endpoint: Uri,
    /// Sent with every export; every value is marked sensitive.
    pub headers: HeaderMap,
    /// Bounds connecting and each export attempt.
    pub timeout: Duration,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("service_name", &self.service_name)
            .finish()
    }
}

/// Headers lastmile sets itself on an export request.
const OWN_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::HOST,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

/// Validates `trace.otlp`, reading `headers_env` from the process environment.
pub fn validate(raw: RawOtlp) -> Result<OtlpConfig> {
    validate_with(raw, |name| std::env::var(name).ok())
}

/// [`validate`] with `env` looking up environment variables.
pub fn validate_with(raw: RawOtlp, env: impl Fn(&str) -> Option<String>) -> Result<OtlpConfig> {
    let endpoint = parse_endpoint(&raw.endpoint)?;
    if raw.timeout_ms == 0 {
        bail!("trace.otlp.timeout_ms must be greater than zero");
    }
    if raw.service_name.trim().is_empty() {
        bail!("trace.otlp.service_name must not be empty");
    }
    let mut headers = HeaderMap::new();
    let from_file = raw
        .headers
        .into_iter()
        .map(|(name, value)| (name, Ok(value), "trace.otlp.headers".to_string()));
    let from_env = raw.headers_env.into_iter().map(|(name, var)| {
        let value = env(&var).filter(|v| !v.is_empty()).with_context(|| {
            format!("the environment variable {var:?} is not set, empty or not UTF-8")
        });
        let field = format!("trace.otlp.headers_env.{name}");
        (name, value, field)
    });
    for (name, value, field) in from_file.chain(from_env) {
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("{field}: {name:?} is not a valid header name"))?;
        if OWN_HEADERS.contains(&name) {
            bail!("{field}: lastmile sets {name} itself");
        }
        if headers.contains_key(&name) {
            bail!("trace.otlp: the header {name} is set twice (headers and headers_env)");
        }
        // The value's parse error names no value, and neither does the context.
        let mut value = HeaderValue::from_str(&value.with_context(|| field.clone())?)
            .with_context(|| format!("{field}: the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(OtlpConfig {
        endpoint,
        headers,
        timeout: Duration::from_millis(raw.timeout_ms),
        service_name: raw.service_name,
    })
}

/// An http(s) URL with a host, no user info (it would be a credential in a URL, and URLs
/// are logged), and a path: the traces endpoint itself, not the collector's base URL.
fn parse_endpoint(value: &str) -> Result<Uri> {
    let url: Uri = value
        .parse()
        .with_context(|| format!("trace.otlp.endpoint: {value:?} is not a URL"))?;
    let plain_host = url
        .authority()
        .is_some_and(|a| !a.as_str().contains('@') && !a.host().is_empty());
    let web = url.scheme() == Some(&Scheme::HTTP) || url.scheme() == Some(&Scheme::HTTPS);
    if !web || !plain_host {
        bail!(
            "trace.otlp.endpoint: {value:?} must be an http:// or https:// URL with a host (and no user info)"
        );
    }
    if url.path() == "/" {
        bail!(
            "trace.otlp.endpoint: {value:?} has no path: give the traces endpoint itself, e.g. http://127.0.0.1:4318/v1/traces"
        );
    }
    Ok(url)
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_service_name() -> String {
    "lastmile".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k-otlp-secret-0af3";

    fn raw(yaml: &str) -> Result<RawOtlp> {
        Ok(serde_yaml_ng::from_str(yaml)?)
    }

    fn env(name: &str) -> Option<String> {
        (name == "OTLP_KEY").then(|| KEY.to_string())
    }

    #[test]
    fn defaults_and_headers_from_the_file_and_the_environment() -> Result<()> {
        let config = validate_with(
            raw("endpoint: http://127.0.0.1:4318/v1/traces\nheaders: {x-team: payments}\nheaders_env: {x-api-key: OTLP_KEY}")?,
            env,
        )?;
        assert_eq!(config.endpoint.path(), "/v1/traces");
        assert_eq!(config.timeout, Duration::from_millis(5_000));
        assert_eq!(config.service_name, "lastmile");
        assert_eq!(
            config.headers.get("x-api-key").map(HeaderValue::as_bytes),
            Some(KEY.as_bytes())
        );
        assert!(config.headers.values().all(HeaderValue::is_sensitive));
        assert!(config.headers.contains_key("x-team"));
        let printed = format!("{config:?}");
        assert!(
            !printed.contains(KEY) && !printed.contains("payments"),
            "{printed}"
        );
        Ok(())
    }

    #[test]
    fn bad_settings_are_refused_without_naming_a_value() -> Result<()> {
        for (yaml, expected) in [
            ("endpoint: ftp://collector/v1/traces", "http:// or https://"),
            ("endpoint: http://user:pw@collector/v1/traces", "no user info"),
            ("endpoint: http://collector:4318", "no path"),
            ("endpoint: http://c/v1/traces\ntimeout_ms: 0", "timeout_ms"),
            ("endpoint: http://c/v1/traces\nservice_name: ' '", "service_name"),
            ("endpoint: http://c/v1/traces\nheaders: {'bad name': x}", "header name"),
            ("endpoint: http://c/v1/traces\nheaders: {content-type: x}", "itself"),
            (
                "endpoint: http://c/v1/traces\nheaders_env: {x-api-key: MISSING}",
                "MISSING",
            ),
            (
                "endpoint: http://c/v1/traces\nheaders: {x-api-key: a}\nheaders_env: {X-Api-Key: OTLP_KEY}",
                "twice",
            ),
        ] {
            let error = match validate_with(raw(yaml)?, env) {
                Ok(_) => anyhow::bail!("{yaml:?} was accepted"),
                Err(e) => format!("{e:#}"),
            };
            assert!(error.contains(expected), "{yaml:?}: {error}");
            assert!(!error.contains(KEY), "{error}");
        }
        let bad_value = validate_with(
            raw("endpoint: http://c/v1/traces\nheaders: {x-api-key: \"k\\nsecret-tail\"}")?,
            env,
        );
        let error = bad_value
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(error.contains("not a valid header value"), "{error}");
        assert!(!error.contains("secret-tail"), "{error}");
        Ok(())
    }

    #[test]
    fn a_header_value_that_looks_like_a_number_is_kept_as_written() -> Result<()> {
        let config = validate_with(
            raw("endpoint: http://c/v1/traces\nheaders: {x-api-key: 0987654321}")?,
            env,
        )?;
        assert_eq!(
            config.headers.get("x-api-key").map(HeaderValue::as_bytes),
            Some("0987654321".as_bytes())
        );
        Ok(())
    }
}
