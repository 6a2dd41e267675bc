//! `trace.otlp`: where spans are exported and with which headers (see
//! [`crate::trace::export::endpoint`]: header values are secrets).

use crate::trace::export::endpoint::{self, default_timeout_ms, Endpoint, RawEndpoint};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

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
#[derive(Clone, Debug)]
pub struct OtlpConfig {
    pub endpoint: Endpoint,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

/// Validates `trace.otlp`, reading `headers_env` from the process environment.
pub fn validate(raw: RawOtlp) -> Result<OtlpConfig> {
    validate_with(raw, |name| std::env::var(name).ok())
}

/// [`validate`] with `env` looking up environment variables.
pub fn validate_with(raw: RawOtlp, env: impl Fn(&str) -> Option<String>) -> Result<OtlpConfig> {
    let endpoint = endpoint::validate(
        RawEndpoint {
            section: "trace.otlp",
            url_key: "endpoint",
            url: &raw.endpoint,
            example: "http://127.0.0.1:4318/v1/traces",
            headers: raw.headers,
            headers_env: raw.headers_env,
            timeout_ms: raw.timeout_ms,
        },
        env,
    )?;
    if raw.service_name.trim().is_empty() {
        bail!("trace.otlp.service_name must not be empty");
    }
    Ok(OtlpConfig {
        endpoint,
        service_name: raw.service_name,
    })
}

fn default_service_name() -> String {
    "lastmile".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::Duration;

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
        assert_eq!(config.endpoint.url.path(), "/v1/traces");
        assert_eq!(config.endpoint.timeout, Duration::from_millis(5_000));
        assert_eq!(config.service_name, "lastmile");
        assert_eq!(
            config
                .endpoint
                .headers
                .get("x-api-key")
                .map(HeaderValue::as_bytes),
            Some(KEY.as_bytes())
        );
        assert!(config
            .endpoint
            .headers
            .values()
            .all(HeaderValue::is_sensitive));
        assert!(config.endpoint.headers.contains_key("x-team"));
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
            config
                .endpoint
                .headers
                .get("x-api-key")
                .map(HeaderValue::as_bytes),
            Some("0987654321".as_bytes())
        );
        Ok(())
    }
}
