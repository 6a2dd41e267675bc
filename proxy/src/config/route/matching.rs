//! How a request finds its route and what it may carry: the upstream URL, the path
//! prefix, the opaque content types, and the check that no two routes overlap.

use super::super::DATA_PREFIX;
use super::{RouteConfig, UpstreamTarget};
use anyhow::{bail, Context, Result};
use http::uri::{Scheme, Uri};

pub(super) fn parse_upstream(value: &str) -> Result<UpstreamTarget> {
    let uri: Uri = value
        .parse()
        .with_context(|| format!("upstream {value:?} is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => bail!("upstream {value:?} must start with http:// or https://"),
    };
    let Some(authority) = uri.authority().cloned() else {
        bail!("upstream {value:?} has no host");
    };
    if uri.query().is_some() {
        bail!("upstream {value:?} must not carry a query string");
    }
    Ok(UpstreamTarget {
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').to_string(),
    })
}

pub(super) fn normalise_prefix(prefix: &str) -> Result<String> {
    if !prefix.starts_with('/') {
        bail!("prefix {prefix:?} must start with '/'");
    }
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        bail!("prefix {prefix:?} must name at least one path segment");
    }
    if trimmed
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        bail!("prefix {prefix:?} has an empty, '.' or '..' segment");
    }
    // The data port answers approval polls there itself.
    if trimmed == DATA_PREFIX || trimmed.starts_with(&format!("{DATA_PREFIX}/")) {
        bail!("prefix {prefix:?} is reserved for lastmile's own endpoints");
    }
    Ok(trimmed.to_string())
}

/// A media type the route forwards unread, lower-cased: `type/subtype` only (matched on
/// the essence), and neither JSON nor a form, which lastmile always parses.
pub(super) fn opaque_content_type(value: &str) -> Result<String> {
    let essence = value.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if !essence
        .split_once('/')
        .is_some_and(|(t, s)| token(t) && token(s))
    {
        bail!("opaque_content_types: {value:?} is not a type/subtype media type (no parameters or wildcards)");
    }
    if crate::headers::parsed_media_type(&essence) {
        bail!(
            "opaque_content_types: {value:?} is always parsed for the policy; it cannot be opaque"
        );
    }
    Ok(essence)
}

pub(super) fn check_unique_routes(routes: &[RouteConfig]) -> Result<()> {
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            if a.name == b.name {
                bail!("route name {:?} is used twice", a.name);
            }
            if a.prefix.is_some() && a.prefix == b.prefix {
                bail!(
                    "routes {:?} and {:?} share the prefix {:?}",
                    a.name,
                    b.name,
                    a.prefix
                );
            }
            if let Some(host) = a.hosts.iter().find(|h| b.hosts.contains(h)) {
                bail!(
                    "routes {:?} and {:?} share the host {host:?}",
                    a.name,
                    b.name
                );
            }
        }
    }
    Ok(())
}
