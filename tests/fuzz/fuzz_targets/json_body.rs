//! A JSON request body: strictness never panics, and what it accepts the policy's parser
//! reads (so no accepted body is then refused, or judged differently, further on).
#![no_main]

use lastmile::pipeline::request::{view_body, BodyView, MAX_JSON_DEPTH};
use lastmile::pipeline::strict_json;
use libfuzzer_sys::fuzz_target;

#[path = "shared/route.rs"]
mod shared_route;
use shared_route::route;

fuzz_target!(|body: &[u8]| {
    let strict = strict_json::check(body, MAX_JSON_DEPTH);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let viewed = view_body(&headers, body, route());
    if !body.is_empty() {
        assert_eq!(
            strict.is_ok(),
            viewed.is_ok(),
            "strict check and body view disagree"
        );
    }
    if let (Ok(()), Ok(BodyView::Json(value))) = (&strict, &viewed) {
        // serde_json's own reading of an accepted body has the same shape.
        let plain: serde_json::Value = serde_json::from_slice(body).expect("accepted body parses");
        let ours = serde_json::to_value(value).expect("policy value serialises");
        assert_eq!(plain.is_object(), ours.is_object());
        if let (Some(a), Some(b)) = (plain.as_object(), ours.as_object()) {
            assert_eq!(a.len(), b.len(), "a key was lost or added");
        }
    }
});
