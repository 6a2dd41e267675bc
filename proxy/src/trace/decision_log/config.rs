//! `trace.decision_logs`: where decision logs are uploaded and with which headers (see
//! [`crate::trace::export::endpoint`]: header values are secrets).

use crate::trace::export::endpoint::{self, default_timeout_ms, Endpoint, RawEndpoint};
use anyhow::Result;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// What the operator wrote under `trace.decision_logs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecisionLogs {
    /// The full URL of the service's logs resource (OPA's default: `<service>/logs`).
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header name -> environment variable holding its value.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl fmt::Debug for RawDecisionLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDecisionLogs")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("headers_env", &self.headers_env)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// The validated upload settings.
#[derive(Clone, Debug)]
pub struct DecisionLogConfig {
    pub endpoint: Endpoint,
}

/// Validates `trace.decision_logs`, reading `headers_env` from the process environment.
pub fn validate(raw: RawDecisionLogs) -> Result<DecisionLogConfig> {
    let endpoint = endpoint::validate(
        RawEndpoint {
            section: "trace.decision_logs",
            url_key: "url",
            url: &raw.url,
            example: "http://decision-logs:8080/logs",
            headers: raw.headers,
            headers_env: raw.headers_env,
            timeout_ms: raw.timeout_ms,
        },
        |name| std::env::var(name).ok(),
    )?;
    Ok(DecisionLogConfig { endpoint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_must_name_the_logs_resource() -> Result<()> {
        let raw = |yaml: &str| -> Result<RawDecisionLogs> { Ok(serde_yaml_ng::from_str(yaml)?) };
        let ok = validate(raw("url: http://logs:8080/logs\nheaders: {x-key: s3cret}")?)?;
        assert_eq!(ok.endpoint.url.path(), "/logs");
        assert!(!format!("{ok:?}").contains("s3cret"));
        for (yaml, expected) in [
            ("url: http://logs:8080", "no path"),
            ("url: ftp://logs/logs", "http:// or https://"),
            (
                "url: http://logs/logs\nheaders: {content-encoding: br}",
                "itself",
            ),
            ("url: http://logs/logs\nother: 1", "unknown field"),
        ] {
            let error = raw(yaml)
                .and_then(validate)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(error.contains(expected), "{yaml:?}: {error}");
        }
        Ok(())
    }
}
