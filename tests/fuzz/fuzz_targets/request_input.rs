//! Request to policy input: path, query, headers and body from fuzzed bytes never panic,
//! and unsafe paths never produce segments.
#![no_main]

use lastmile::pipeline::input::{build, InputParts};
use lastmile::pipeline::request::{path_segments, view_body, BodyView};
use libfuzzer_sys::fuzz_target;

#[path = "shared/route.rs"]
mod shared_route;
use shared_route::route;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = parts
        .next()
        .map(|q| String::from_utf8_lossy(q).into_owned());
    let header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let path = format!("/{path}");
    let Ok(segments) = path_segments(&path) else {
        return;
    };
    for segment in &segments {
        assert!(!segment.is_empty() && segment != "." && segment != "..");
        assert!(
            !segment.contains('/'),
            "a segment holds a slash: {segment:?}"
        );
    }
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(header) {
        headers.insert(http::header::CONTENT_TYPE, value.clone());
        headers.insert("x-agent", value);
    }
    let view = view_body(&headers, body, route()).unwrap_or(BodyView::Opaque);
    let input = build(InputParts {
        route: "crm",
        mode: "enforce",
        method: &http::Method::POST,
        path: &path,
        segments: &segments,
        query: query.as_deref(),
        headers: &headers,
        hidden: [None, None],
        body: &view,
        body_bytes: body.len(),
        user: None,
        credential: regorus::Value::Null,
        now_ns: 0,
    });
    assert!(matches!(input, regorus::Value::Object(_)));
});
