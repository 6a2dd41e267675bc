//! The responses lastmile builds, at the ground floor: every layer (pipeline, approvals,
//! admin, demo) answers with these, so none of them has to import another to reply.

use crate::dedup::state::StoredResponse;
use crate::headers::strip_hop_by_hop;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;

/// The body type of every response lastmile sends.
pub type ResponseBody = BoxBody<Bytes, hyper::Error>;

/// Response header marking a dedup replay: the agent sees that the upstream was not
/// called again.
pub const REPLAYED_HEADER: &str = "lastmile-replayed";

/// A complete body; it cannot fail, so its error type is never produced.
fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response with a complete body and the given `Content-Type`.
pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response with a complete body.
pub fn json_response(status: StatusCode, body: String) -> Response<ResponseBody> {
    text(status, "application/json", body)
}

/// A JSON error body: `{"error": {"code", "message"}}`, as the admin and approver APIs
/// answer.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    json_response(
        status,
        serde_json::json!({"error": {"code": code, "message": message}}).to_string(),
    )
}

/// An HTML page with the security headers every page lastmile serves carries: no
/// framing, no sniffing, no caching, and a CSP that allows nothing by default.
pub fn html(status: StatusCode, html: String) -> Response<ResponseBody> {
    let mut response = text(status, "text/html; charset=utf-8", html);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` on form posts, which the
    // same-origin check must refuse.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The upstream's response as it came, minus hop-by-hop headers.
pub fn respond(response: Response<Incoming>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
}

/// A stored response, as sent again: its status (200 if the stored one is not valid),
/// its stored headers, and [`REPLAYED_HEADER`].
pub fn replay(stored: StoredResponse) -> Response<ResponseBody> {
    let mut response = Response::new(full(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for h in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::state::StoredHeader;

    #[test]
    fn replay_keeps_status_and_headers_and_marks_itself() {
        let stored = |status| StoredResponse {
            status,
            headers: vec![StoredHeader {
                name: "x-upstream".into(),
                value: Bytes::from_static(b"1"),
            }],
            body: Bytes::from_static(b"{}"),
        };
        let replayed = replay(stored(201));
        assert_eq!(replayed.status(), StatusCode::CREATED);
        assert_eq!(replayed.headers()["x-upstream"], "1");
        assert_eq!(replayed.headers()[REPLAYED_HEADER], "true");
        assert_eq!(replay(stored(1000)).status(), StatusCode::OK);
    }
}
