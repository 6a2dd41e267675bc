//! Reading the agent's request: path safety, bounded body, JSON parsing.

use crate::refusal::Refusal;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use regorus::Value;

/// The request body as the policy sees it.
#[derive(Debug)]
pub enum BodyView {
    Empty,
    /// Parsed once; the original bytes are what goes upstream.
    Json(Value),
    /// Not JSON: the policy gets the content type and length only.
    Opaque,
}

/// Splits the upstream path into percent-decoded segments for the policy, refusing
/// paths that an upstream might normalise into something the policy did not see
/// (`..`, `.`, encoded slashes, empty segments).
pub fn path_segments(path: &str) -> Result<Vec<String>, Refusal> {
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split('/')
        .map(|raw| {
            let segment = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| Refusal::BadPath("the path is not valid UTF-8 once decoded"))?;
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(Refusal::BadPath(
                    "the path has an empty, '.' or '..' segment",
                ));
            }
            if segment.contains(['/', '\\', '\0']) {
                return Err(Refusal::BadPath(
                    "the path has an encoded slash, backslash or NUL",
                ));
            }
            Ok(segment.into_owned())
        })
        .collect()
}

/// Reads the whole body, refusing it past `limit` bytes (checked against a declared
/// `Content-Length` first, so an oversized upload is refused before it is read).
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Refusal> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Refusal::BodyTooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::BodyTooLarge(limit)),
        Err(_) => Err(Refusal::BodyUnreadable),
    }
}

/// Refuses framing that two parsers could read differently. hyper already refuses a
/// `Transfer-Encoding` whose last coding is not `chunked`, conflicting `Content-Length`s
/// and `Transfer-Encoding` on HTTP/1.0; a body with any coding besides `chunked` (say
/// `gzip, chunked`) would reach the policy still encoded, so it is refused too.
pub fn check_framing(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut codings = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|c| c.trim().to_ascii_lowercase());
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        (Some(first), None) if first == "chunked" => Ok(()),
        _ => Err(Refusal::BadFraming(
            "Transfer-Encoding other than a single chunked coding",
        )),
    }
}

/// Headers that decide what the policy sees or what lastmile sets: a `Connection` header
/// naming one would have it dropped by the next hop after the policy judged it.
const PROTECTED: [&str; 11] = [
    "authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "idempotency-key",
    "traceparent",
    "tracestate",
    "forwarded",
    "x-forwarded-for",
];

/// Refuses a `Connection` header that names a protected header, or one of `extra` (the
/// identity and credential headers).
pub fn check_connection(headers: &HeaderMap, extra: &[&http::HeaderName]) -> Result<(), Refusal> {
    for value in headers.get_all(http::header::CONNECTION) {
        let text = value.to_str().map_err(|_| {
            Refusal::BadConnectionHeader("a value that is not visible ASCII".into())
        })?;
        for token in text.split(',').map(|t| t.trim().to_ascii_lowercase()) {
            if PROTECTED.contains(&token.as_str()) || extra.iter().any(|h| h.as_str() == token) {
                return Err(Refusal::BadConnectionHeader(token));
            }
        }
    }
    Ok(())
}

/// Whether a content type says JSON (`application/json`, `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses the body for the policy. A JSON content type with a body that does not parse
/// is refused: the policy must never judge a body it could not read.
pub fn view_body(headers: &HeaderMap, body: &[u8]) -> Result<BodyView, Refusal> {
    if body.is_empty() {
        return Ok(BodyView::Empty);
    }
    if !is_json(headers) {
        return Ok(BodyView::Opaque);
    }
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    if encoding.is_some_and(|e| e != "identity") {
        return Err(Refusal::UnsupportedContentEncoding);
    }
    super::strict_json::check(body, MAX_JSON_DEPTH).map_err(Refusal::InvalidJson)?;
    serde_json::from_slice::<Value>(body)
        .map(BodyView::Json)
        .map_err(|e| Refusal::InvalidJson(format!("line {} column {}", e.line(), e.column())))
}

/// Deepest nesting of a JSON body the policy will read; deeper documents are refused.
pub const MAX_JSON_DEPTH: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_decoded_and_unsafe_paths_refused() {
        assert_eq!(
            path_segments("/v1/invoices/INV%2D1/").ok(),
            Some(vec!["v1".into(), "invoices".into(), "INV-1".into()])
        );
        assert_eq!(path_segments("/").ok(), Some(vec![]));
        for bad in [
            "/v1/../admin",
            "/v1/./x",
            "/v1//x",
            "/v1/a%2Fb",
            "/v1/%2e%2e/x",
            "/v1/%ff",
        ] {
            assert!(path_segments(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        for (ct, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
        ] {
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(ct),
            );
            assert_eq!(is_json(&h), json, "{ct}");
        }
    }
}
