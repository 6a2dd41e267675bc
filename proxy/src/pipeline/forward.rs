//! Turning an allowed request into the upstream request: the route's target, header
//! hygiene, the route's credential, trace context and the policy's obligations.

use crate::config::UpstreamTarget;
use crate::headers::{strip_hop_by_hop, NEVER_FORWARDED};
use crate::policy::decision::Decision;
use crate::refusal::Refusal;
use crate::trace::context::TraceContext;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

/// What the agent asked for, reduced to what goes upstream.
pub struct Outbound<'a> {
    pub method: Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Builds the upstream request. Headers the agent must not control are removed: its
/// own credentials, the identity token, hop-by-hop headers and `Host`. `credential` is
/// the route's header and the value already resolved for this request's user.
pub fn build(
    target: &UpstreamTarget,
    outbound: Outbound<'_>,
    identity_header: Option<&HeaderName>,
    credential: Option<(&HeaderName, HeaderValue)>,
    decision: Option<&Decision>,
    trace: &TraceContext,
) -> Result<Request<Full<Bytes>>, Refusal> {
    let mut headers = outbound.headers;
    strip_hop_by_hop(&mut headers);
    for name in NEVER_FORWARDED {
        headers.remove(name);
    }
    if let Some(name) = identity_header {
        headers.remove(name);
    }
    if let Some(decision) = decision {
        for (name, value) in &decision.add_headers {
            headers.insert(name.clone(), value.clone());
        }
    }
    if let Some((name, value)) = credential {
        headers.remove(name);
        headers.insert(name.clone(), value);
    }
    if let Some(traceparent) = trace.traceparent() {
        headers.insert("traceparent", traceparent);
    }
    let add_query = decision.map(|d| d.add_query.as_slice()).unwrap_or_default();
    let uri = upstream_uri(target, outbound.path, outbound.query, add_query)?;
    let mut request = Request::new(Full::new(outbound.body));
    *request.method_mut() = outbound.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

fn upstream_uri(
    target: &UpstreamTarget,
    path: &str,
    query: Option<&str>,
    add_query: &[(String, Vec<String>)],
) -> Result<Uri, Refusal> {
    let query = if add_query.is_empty() {
        query.map(str::to_string)
    } else {
        Some(merge_query(query, add_query))
    };
    let mut path_and_query = format!("{}{}", target.base_path, path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        path_and_query.push('?');
        path_and_query.push_str(&q);
    }
    Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Refusal::BadPath("the request target cannot be sent upstream"))
}

/// The policy's parameters replace any the agent sent under the same name, so an agent
/// cannot widen a scope filter by adding its own.
fn merge_query(query: Option<&str>, add: &[(String, Vec<String>)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !add.iter().any(|(name, _)| *name == k) {
            out.append_pair(&k, &v);
        }
    }
    for (name, values) in add {
        for value in values {
            out.append_pair(name, value);
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_query_parameters_replace_the_agents() {
        let add = vec![("account".to_string(), vec!["acme".to_string()])];
        assert_eq!(
            merge_query(Some("account=globex&q=x"), &add),
            "q=x&account=acme"
        );
        assert_eq!(merge_query(None, &add), "account=acme");
    }

    #[test]
    fn joins_base_path_and_keeps_the_raw_query() -> anyhow::Result<()> {
        let target = UpstreamTarget {
            scheme: http::uri::Scheme::HTTPS,
            authority: "crm.example.com".parse()?,
            base_path: "/api".into(),
        };
        let uri = upstream_uri(&target, "/v1/x", Some("a=%20b"), &[])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(uri.to_string(), "https://crm.example.com/api/v1/x?a=%20b");
        Ok(())
    }
}
