//! Where an exporter sends: an http(s) URL and the headers to send with it (usually a
//! collector's API key). Header values are secrets: they are marked sensitive, never
//! printed by `Debug`, and never named in an error (only the header or variable is).

use anyhow::{bail, Context, Result};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A validated export endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub url: Uri,
    /// Sent with every export; every value is marked sensitive.
    pub headers: HeaderMap,
    /// Bounds connecting and each export attempt.
    pub timeout: Duration,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the operator wrote for an endpoint, under `section` (`trace.otlp`).
pub struct RawEndpoint<'a> {
    pub section: &'a str,
    /// The config key of the URL (`endpoint`, `url`).
    pub url_key: &'a str,
    pub url: &'a str,
    /// An example of the URL, for the error when it has no path.
    pub example: &'a str,
    pub headers: BTreeMap<String, String>,
    pub headers_env: BTreeMap<String, String>,
    pub timeout_ms: u64,
}

/// Headers lastmile sets itself on an export request.
const OWN_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LENGTH,
    header::HOST,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

/// Validates an endpoint, reading `headers_env` with `env`.
pub fn validate(raw: RawEndpoint<'_>, env: impl Fn(&str) -> Option<String>) -> Result<Endpoint> {
    let section = raw.section;
    let url = parse_url(&raw)?;
    if raw.timeout_ms == 0 {
        bail!("{section}.timeout_ms must be greater than zero");
    }
    let mut headers = HeaderMap::new();
    let from_file = raw
        .headers
        .into_iter()
        .map(|(name, value)| (name, Ok(value), format!("{section}.headers")));
    let from_env = raw.headers_env.into_iter().map(|(name, var)| {
        let value = env(&var).filter(|v| !v.is_empty()).with_context(|| {
            format!("the environment variable {var:?} is not set, empty or not UTF-8")
        });
        let field = format!("{section}.headers_env.{name}");
        (name, value, field)
    });
    for (name, value, field) in from_file.chain(from_env) {
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("{field}: {name:?} is not a valid header name"))?;
        if OWN_HEADERS.contains(&name) {
            bail!("{field}: lastmile sets {name} itself");
        }
        if headers.contains_key(&name) {
            bail!("{section}: the header {name} is set twice (headers and headers_env)");
        }
        // The value's parse error names no value, and neither does the context.
        let mut value = HeaderValue::from_str(&value.with_context(|| field.clone())?)
            .with_context(|| format!("{field}: the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(Endpoint {
        url,
        headers,
        timeout: Duration::from_millis(raw.timeout_ms),
    })
}

/// An http(s) URL with a host, no user info (it would be a credential in a URL, and URLs
/// are logged), and a path: the endpoint itself, not the server's base URL.
fn parse_url(raw: &RawEndpoint<'_>) -> Result<Uri> {
    let (section, key, value) = (raw.section, raw.url_key, raw.url);
    let url: Uri = value
        .parse()
        .with_context(|| format!("{section}.{key}: {value:?} is not a URL"))?;
    let plain_host = url
        .authority()
        .is_some_and(|a| !a.as_str().contains('@') && !a.host().is_empty());
    let web = url.scheme() == Some(&Scheme::HTTP) || url.scheme() == Some(&Scheme::HTTPS);
    if !web || !plain_host {
        bail!(
            "{section}.{key}: {value:?} must be an http:// or https:// URL with a host (and no user info)"
        );
    }
    if url.path() == "/" {
        bail!(
            "{section}.{key}: {value:?} has no path: give the endpoint itself, e.g. {}",
            raw.example
        );
    }
    Ok(url)
}

pub fn default_timeout_ms() -> u64 {
    5_000
}
