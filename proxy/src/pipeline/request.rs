//! Reading the agent's request as the upstream will: path safety, headers that must be
//! single, the effective method, a bounded body, and the body parsed for the policy.

use crate::config::{Mode, RouteConfig};
use crate::headers::{
    parsed_media_type, FORM_MEDIA_TYPE as FORM, METHOD_OVERRIDES, PROTECTED, SINGLETONS,
};
use crate::refusal::Refusal;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use regorus::Value;

/// The request body as the policy sees it.
#[derive(Debug)]
pub enum BodyView {
    Empty,
    /// Parsed once; the original bytes are what goes upstream.
    Json(Value),
    /// `application/x-www-form-urlencoded`, parsed by [`super::form::parse`].
    Form(Value),
    /// A type the route forwards unread (or any, on a dry-run route): the policy gets the
    /// content type, the length and `body_opaque: true`.
    Opaque,
}

impl BodyView {
    /// The parsed document, for the policy, the dedup fingerprint and the trace.
    pub fn document(&self) -> Option<&Value> {
        match self {
            BodyView::Json(value) | BodyView::Form(value) => Some(value),
            BodyView::Empty | BodyView::Opaque => None,
        }
    }
}

/// Splits the upstream path into percent-decoded segments for the policy, refusing
/// paths that an upstream might normalise into something the policy did not see
/// (`..`, `.`, encoded slashes, empty segments, and `;`, which servlet-style servers
/// strip as a path parameter: `/v1/..;/admin` is `/admin` to them).
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
            if segment.contains(';') {
                return Err(Refusal::BadPath(
                    "the path has a ';', which some servers strip as a path parameter",
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

/// The content type's essence (`type/subtype`), lower case; `None` without one.
fn essence(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

/// Parses the body for the policy; the one reading used for the data path and approved
/// execution alike. JSON and form bodies that do not parse unambiguously are refused:
/// the policy must never judge a body it could not read. Any other body is refused on an
/// enforce route unless the route lists its type in `opaque_content_types`; a dry-run
/// route observes and forwards it. Either way the policy is told it is opaque.
pub fn view_body(
    headers: &HeaderMap,
    body: &[u8],
    route: &RouteConfig,
) -> Result<BodyView, Refusal> {
    if body.is_empty() {
        return Ok(BodyView::Empty);
    }
    let essence = essence(headers);
    let Some(parsed) = essence.as_deref().filter(|e| parsed_media_type(e)) else {
        let listed = essence.is_some_and(|e| route.opaque_content_types.contains(&e));
        return match (listed, route.mode) {
            (true, _) | (false, Mode::DryRun) => Ok(BodyView::Opaque),
            (false, Mode::Enforce) => Err(Refusal::UnsupportedMediaType),
        };
    };
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    if encoding.is_some_and(|e| e != "identity") {
        return Err(Refusal::UnsupportedContentEncoding);
    }
    if parsed == FORM {
        return super::form::parse(body, MAX_JSON_DEPTH)
            .map(BodyView::Form)
            .map_err(Refusal::InvalidForm);
    }
    super::strict_json::check(body, MAX_JSON_DEPTH).map_err(Refusal::InvalidJson)?;
    serde_json::from_slice::<Value>(body)
        .map(BodyView::Json)
        .map_err(|e| Refusal::InvalidJson(format!("line {} column {}", e.line(), e.column())))
}

/// Refuses a singleton header, or one of `extra` (the identity header and the route's
/// credential and upstream idempotency headers), sent more than once.
pub fn check_singletons(headers: &HeaderMap, extra: &[&HeaderName]) -> Result<(), Refusal> {
    let names = SINGLETONS
        .iter()
        .copied()
        .chain(extra.iter().map(|n| n.as_str()));
    for name in names {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(Refusal::AmbiguousHeader(name.to_string()));
        }
    }
    Ok(())
}

/// The method the upstream will perform: `method`, or the one a method-override header
/// names when the route `allowed` them. Without that opt-in such a header is refused (the
/// policy would judge a POST the upstream performs as a DELETE); with it, exactly one
/// upper-case method token, not CONNECT.
pub fn effective_method(
    method: &Method,
    headers: &HeaderMap,
    allowed: bool,
) -> Result<Method, Refusal> {
    let mut values = METHOD_OVERRIDES
        .iter()
        .flat_map(|name| headers.get_all(*name).iter());
    let Some(value) = values.next() else {
        return Ok(method.clone());
    };
    if !allowed {
        return Err(Refusal::MethodOverride(
            "this route does not honour method-override headers (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override); send the method itself",
        ));
    }
    if values.next().is_some() {
        return Err(Refusal::MethodOverride(
            "send at most one method-override header",
        ));
    }
    let bytes = value.as_bytes();
    // Upper case only: a policy matching "DELETE" must not miss a "delete" the upstream honours.
    let token = !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_uppercase() || *b == b'-');
    match Method::from_bytes(bytes) {
        Ok(m) if token && m != Method::CONNECT => Ok(m),
        _ => Err(Refusal::MethodOverride(
            "a method override must name one upper-case method, not CONNECT",
        )),
    }
}

/// Deepest nesting of a JSON body the policy will read; deeper documents are refused.
pub const MAX_JSON_DEPTH: usize = 32;

#[cfg(test)]
mod tests;
