//! Header policy: every list of headers lastmile strips, hides, reserves, protects or
//! requires to be single, each with the reason it exists, and the media types it reads.
//! One place so that adding a secret or framing header is one edit, and a reviewer can
//! see at a glance what the agent, the policy, the approver and the upstream each get.
//!
//! Names are lower case: `HeaderName::as_str` is, and the lists compare against it.
//! Headers configured per route or per deployment (the identity header, a route's
//! credential header, its upstream idempotency header) are added at the call sites.

use http::header::{self, HeaderMap, HeaderName};

/// Credentials and identity tokens an agent may send. They prove who the agent is to
/// lastmile; nobody downstream of that check needs them.
const CREDENTIALS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// Never shown to the policy: a Rego bundle, its tests and its decision logs are not
/// the place for secrets, and policies judge the verified identity, not the raw token.
pub const HIDDEN_FROM_POLICY: [&str; 3] = CREDENTIALS;

/// Never stored with a parked request: the approvals store outlives the request and is
/// read by approvers; approved execution sends the route's own credential instead.
pub const NEVER_STORED: [&str; 3] = CREDENTIALS;

/// Removed from every upstream request (besides hop-by-hop ones): the agent's own
/// credentials must not reach the upstream, which gets the route's credential; `Host`
/// is the upstream's, and `Content-Length` is recomputed from the body actually sent;
/// the user's words (`lastmile-user-input`) are for the trace, not the tool.
pub const NEVER_FORWARDED: [HeaderName; 5] = [
    header::HOST,
    header::AUTHORIZATION,
    header::COOKIE,
    header::CONTENT_LENGTH,
    HeaderName::from_static("lastmile-user-input"),
];

/// Not kept for a dedup replay or an approval's stored answer: a session (`Set-Cookie`)
/// must not be handed out twice, and `Date` must say when the replay was sent.
pub const NEVER_REPLAYED: [HeaderName; 2] = [header::SET_COOKIE, header::DATE];

/// Headers that decide what the policy sees or what lastmile sets: a `Connection` header
/// naming one would have it dropped by the next hop after the policy judged it.
pub const PROTECTED: [&str; 11] = [
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

/// Headers whose value decides what is judged or where it goes: sent twice, the policy
/// could judge one value and the upstream act on the other (first wins in some servers,
/// last in others).
pub const SINGLETONS: [&str; 5] = [
    "content-type",
    "content-encoding",
    "host",
    "authorization",
    "idempotency-key",
];

/// Headers some frameworks read as the real method of a POST: refused unless the route
/// opts in, since the policy would judge a POST the upstream performs as a DELETE.
pub const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers a policy may not add (`add_headers`): framing, routing and hop-by-hop headers
/// belong to the proxy, and `traceparent` to lastmile's own trace context.
pub const RESERVED: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "traceparent",
];

/// The media type of form bodies, which lastmile parses for the policy.
pub const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

/// Whether a content type's essence (`type/subtype`, lower case) says JSON
/// (`application/json`, `application/*+json`).
pub fn is_json_essence(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether lastmile parses bodies of this essence for the policy (JSON or a form); such
/// a type can never be configured as opaque.
pub fn parsed_media_type(essence: &str) -> bool {
    is_json_essence(essence) || essence == FORM_MEDIA_TYPE
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and never cross the
/// proxy, in either direction. These are so whatever `Connection` says.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes the hop-by-hop set, every header named in `Connection`, and `Upgrade`, from a
/// request going upstream or a response coming back.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn lists_are_valid_lower_case_names() {
        // They are compared with `HeaderName::as_str`, which is lower case: an entry in
        // any other case would silently never match.
        let lists: [&[&str]; 6] = [
            &HIDDEN_FROM_POLICY,
            &NEVER_STORED,
            &PROTECTED,
            &SINGLETONS,
            &METHOD_OVERRIDES,
            &RESERVED,
        ];
        for name in lists.into_iter().flatten() {
            assert_eq!(HeaderName::from_static(name).as_str(), *name);
        }
    }

    #[test]
    fn strips_fixed_set_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}
