use super::*;
use crate::headers::is_json_essence;

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
        "/v1/..;/admin",
        "/v1/invoices;jsessionid=1",
        "/v1/..%3B/admin",
        "/v1/a%3bb",
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
        assert_eq!(
            essence(&h).is_some_and(|e| is_json_essence(&e)),
            json,
            "{ct}"
        );
    }
}

/// A route from YAML, as the operator writes it.
fn route(extra: &str) -> RouteConfig {
    let yaml = format!(
        "policies: {{dir: p}}\nroutes: [{{name: a, prefix: /a, upstream: 'http://a'{extra}}}]"
    );
    match crate::config::Config::from_yaml(&yaml, std::path::Path::new("/")) {
        Ok(config) => config.routes[0].clone(),
        Err(e) => unreachable!("test config: {e:#}"),
    }
}

fn typed(ct: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(ct) {
        h.insert(http::header::CONTENT_TYPE, value);
    }
    h
}

#[test]
fn bodies_are_parsed_listed_as_opaque_or_refused() {
    let enforce = route("");
    let listed = route(", opaque_content_types: [Text/Plain]");
    let dry_run = route(", mode: dry-run");
    let form = typed("application/x-www-form-urlencoded; charset=utf-8");
    assert!(matches!(
        view_body(&form, b"a[b]=1", &enforce),
        Ok(BodyView::Form(_))
    ));
    assert!(matches!(
        view_body(&typed("text/plain"), b"", &enforce),
        Ok(BodyView::Empty)
    ));
    for ct in ["text/plain", "application/octet-stream", ""] {
        let refused = view_body(&typed(ct), b"{}", &enforce);
        assert!(
            matches!(refused, Err(Refusal::UnsupportedMediaType)),
            "{ct}"
        );
        assert!(
            matches!(view_body(&typed(ct), b"{}", &dry_run), Ok(BodyView::Opaque)),
            "{ct}"
        );
    }
    let text = typed("text/plain; charset=utf-8");
    assert!(matches!(
        view_body(&text, b"hi", &listed),
        Ok(BodyView::Opaque)
    ));
    let octets = typed("application/octet-stream");
    assert!(view_body(&octets, b"hi", &listed).is_err());
    let mut gzip = form.clone();
    gzip.insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static("gzip"),
    );
    assert!(matches!(
        view_body(&gzip, b"a=1", &enforce),
        Err(Refusal::UnsupportedContentEncoding)
    ));
    assert!(matches!(
        view_body(&form, b"a=1&a=2", &enforce),
        Err(Refusal::InvalidForm(_))
    ));
}

#[test]
fn opaque_content_types_are_validated() {
    for bad in [
        "text",
        "text/*",
        "*/*",
        "text/plain; charset=utf-8",
        "application/json",
        "application/x-www-form-urlencoded",
        "application/vnd.x+json",
    ] {
        let yaml = format!("policies: {{dir: p}}\nroutes: [{{name: a, prefix: /a, upstream: 'http://a', opaque_content_types: ['{bad}']}}]");
        assert!(
            crate::config::Config::from_yaml(&yaml, std::path::Path::new("/")).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        route(", opaque_content_types: [Text/CSV]").opaque_content_types,
        ["text/csv"]
    );
}

#[test]
fn singleton_headers_sent_twice_are_refused_by_name() {
    let identity = HeaderName::from_static("x-lastmile-user");
    let mut h = HeaderMap::new();
    h.append("x-tag", http::HeaderValue::from_static("a"));
    h.append("x-tag", http::HeaderValue::from_static("b"));
    h.insert("x-lastmile-user", http::HeaderValue::from_static("t1"));
    assert!(check_singletons(&h, &[&identity]).is_ok());
    h.append(
        "x-lastmile-user",
        http::HeaderValue::from_static("secret-t2"),
    );
    match check_singletons(&h, &[&identity]) {
        Err(refusal @ Refusal::AmbiguousHeader(_)) => {
            let text = refusal.to_string();
            assert!(
                text.contains("x-lastmile-user") && !text.contains("secret"),
                "{text}"
            );
        }
        other => unreachable!("{other:?}"),
    }
    for name in SINGLETONS {
        let mut h = HeaderMap::new();
        h.append(name, http::HeaderValue::from_static("a"));
        h.append(name, http::HeaderValue::from_static("a"));
        assert!(check_singletons(&h, &[]).is_err(), "{name}");
    }
}

#[test]
fn method_overrides_need_the_route_and_one_upper_case_method() {
    let with = |pairs: &[(&'static str, &'static str)]| {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, http::HeaderValue::from_static(value));
        }
        h
    };
    let post = Method::POST;
    assert_eq!(
        effective_method(&post, &with(&[]), false).ok(),
        Some(Method::POST)
    );
    let delete = with(&[("x-http-method-override", "DELETE")]);
    assert!(effective_method(&post, &delete, false).is_err());
    assert_eq!(
        effective_method(&post, &delete, true).ok(),
        Some(Method::DELETE)
    );
    for bad in [
        with(&[("x-http-method", "DELETE"), ("x-method-override", "DELETE")]),
        with(&[
            ("x-http-method-override", "DELETE"),
            ("x-http-method-override", "PUT"),
        ]),
        with(&[("x-http-method-override", "delete")]),
        with(&[("x-http-method-override", "DELETE, PUT")]),
        with(&[("x-http-method-override", "CONNECT")]),
        with(&[("x-http-method-override", "")]),
    ] {
        assert!(effective_method(&post, &bad, true).is_err(), "{bad:?}");
    }
}
