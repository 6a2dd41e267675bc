//! Building the policy input document (contract version [`INPUT_VERSION`]) directly as a
//! regorus value: no JSON text round-trip on the hot path.

use super::request::BodyView;
use crate::headers::HIDDEN_FROM_POLICY;
use crate::identity::User;
use crate::policy::INPUT_VERSION;
use http::{HeaderMap, HeaderName, Method};
use regorus::Value;
use std::collections::BTreeMap;

/// Everything the input is built from.
pub struct InputParts<'a> {
    pub route: &'a str,
    pub mode: &'static str,
    /// The effective method: an honoured method override's, else the request line's.
    pub method: &'a Method,
    pub path: &'a str,
    pub segments: &'a [String],
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// Further headers to hide: the identity header and the route's credential header.
    pub hidden: [Option<&'a HeaderName>; 2],
    pub body: &'a BodyView,
    pub body_bytes: usize,
    pub user: Option<&'a User>,
    /// `{"mode", "subject"}` of the route's credential (never the credential), or null.
    pub credential: Value,
    pub now_ns: u128,
}

fn obj(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::from(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The input document of a request as it arrives (`approval` is `null`).
pub fn build(parts: InputParts<'_>) -> Value {
    build_with_approval(parts, Value::Null)
}

/// The input document with `approval` set: `{"approved_by", "approved_at",
/// "approval_id"}` when an approved request is evaluated again before it is executed.
pub fn build_with_approval(parts: InputParts<'_>, approval: Value) -> Value {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, Value::from);
    let body_opaque = matches!(parts.body, BodyView::Opaque);
    // A clone of the parsed document's reference-counted root, not a deep copy.
    let body = match parts.body {
        BodyView::Json(value) | BodyView::Form(value) => value.clone(),
        BodyView::Empty | BodyView::Opaque => Value::Null,
    };
    let request = obj([
        ("method", Value::from(parts.method.as_str())),
        ("path", Value::from(parts.path)),
        (
            "segments",
            Value::from(
                parts
                    .segments
                    .iter()
                    .map(|s| Value::from(s.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ),
        ("query", query(parts.query)),
        ("headers", headers(parts.headers, parts.hidden)),
        ("content_type", content_type),
        ("body", body),
        ("body_opaque", Value::from(body_opaque)),
        ("body_bytes", Value::from(parts.body_bytes)),
    ]);
    obj([
        ("version", Value::from(INPUT_VERSION)),
        ("route", Value::from(parts.route)),
        ("mode", Value::from(parts.mode)),
        ("request", request),
        ("user", parts.user.map_or(Value::Null, |u| u.claims.clone())),
        ("credential", parts.credential),
        ("approval", approval),
        ("now_ns", Value::from(parts.now_ns)),
    ])
}

/// `?a=1&a=2&b=x` → `{"a": ["1", "2"], "b": ["x"]}`.
fn query(raw: Option<&str>) -> Value {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        map.entry(k.into_owned())
            .or_default()
            .push(Value::from(v.into_owned()));
    }
    Value::from(
        map.into_iter()
            .map(|(k, v)| (Value::from(k), Value::from(v)))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Lower-case names; repeated headers joined with `, `; credentials left out.
fn headers(headers: &HeaderMap, hidden: [Option<&HeaderName>; 2]) -> Value {
    let mut map: BTreeMap<Value, Value> = BTreeMap::new();
    for name in headers.keys() {
        if HIDDEN_FROM_POLICY.contains(&name.as_str()) || hidden.contains(&Some(name)) {
            continue;
        }
        // Bytes beyond visible ASCII (obs-text) are forwarded as they came, so the policy
        // must see the value too: read as UTF-8, with U+FFFD for invalid sequences.
        let values: Vec<std::borrow::Cow<'_, str>> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        if !values.is_empty() {
            map.insert(Value::from(name.as_str()), Value::from(values.join(", ")));
        }
    }
    Value::from(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_shape_without_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/json"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("")),
        );
        headers.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer agent"),
        );
        headers.insert("x-lastmile-user", http::HeaderValue::from_static("jwt"));
        headers.append("x-tag", http::HeaderValue::from_static("a"));
        headers.append("x-tag", http::HeaderValue::from_static("b"));
        let identity = HeaderName::from_static("x-lastmile-user");
        let input = build(InputParts {
            route: "crm",
            mode: "enforce",
            method: &Method::POST,
            path: "/v1/invoices",
            segments: &["v1".into(), "invoices".into()],
            query: Some("a=1&a=2&b=x%20y"),
            headers: &headers,
            hidden: [Some(&identity), None],
            body: &BodyView::Json(Value::from(7u64)),
            body_bytes: 1,
            user: None,
            credential: Value::Null,
            now_ns: 5,
        });
        assert_eq!(input["version"], Value::from(INPUT_VERSION));
        assert_eq!(input["request"]["query"]["a"][1], Value::from("2"));
        assert_eq!(input["request"]["query"]["b"][0], Value::from("x y"));
        assert_eq!(input["request"]["headers"]["x-tag"], Value::from("a, b"));
        assert_eq!(
            input["request"]["headers"]["authorization"],
            Value::Undefined
        );
        assert_eq!(
            input["request"]["headers"]["x-lastmile-user"],
            Value::Undefined
        );
        assert_eq!(input["request"]["body"], Value::from(7u64));
        assert_eq!(input["request"]["body_opaque"], Value::from(false));
        assert_eq!(input["user"], Value::Null);
    }
}
