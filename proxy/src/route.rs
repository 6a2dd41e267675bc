//! Route matching: which configured upstream a request is for, and the path it has there.
//!
//! Origin-form requests (`GET /crm/v1/x`) match by the longest path prefix on a segment
//! boundary and lose the prefix; absolute-form requests (`GET http://crm.example/v1/x`,
//! sent by clients configured with `HTTP_PROXY`) match by host and keep their path.

use http::Uri;

/// A matched route: its index in the configured list and the path to send upstream
/// (always starting with `/`, without the query).
#[derive(Debug, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub index: usize,
    pub path: &'a str,
}

/// The compiled route table: prefixes sorted longest first, hosts lower-cased.
#[derive(Debug)]
pub struct RouteTable {
    prefixes: Vec<(String, usize)>,
    hosts: Vec<(String, usize)>,
}

impl RouteTable {
    /// Builds the table from each route's optional prefix and its host names.
    pub fn new<'a>(routes: impl Iterator<Item = (Option<&'a str>, &'a [String])>) -> Self {
        let mut prefixes = Vec::new();
        let mut hosts = Vec::new();
        for (index, (prefix, route_hosts)) in routes.enumerate() {
            if let Some(prefix) = prefix {
                prefixes.push((prefix.to_string(), index));
            }
            hosts.extend(route_hosts.iter().map(|h| (h.clone(), index)));
        }
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        RouteTable { prefixes, hosts }
    }

    /// Finds the route for a request, or `None` (the caller refuses: fail closed).
    /// `absolute_form` is true for an HTTP/1 request line naming a host; HTTP/2
    /// requests always carry an authority, so for them the path decides.
    pub fn find<'u>(&self, uri: &'u Uri, absolute_form: bool) -> Option<RouteMatch<'u>> {
        let path = uri.path();
        if let Some(authority) = uri.authority().filter(|_| absolute_form) {
            let host = authority.as_str().to_ascii_lowercase();
            let bare = authority.host().to_ascii_lowercase();
            let index = self
                .hosts
                .iter()
                .find(|(h, _)| *h == host || *h == bare)
                .map(|(_, i)| *i)?;
            return Some(RouteMatch {
                index,
                path: if path.is_empty() { "/" } else { path },
            });
        }
        self.prefixes.iter().find_map(|(prefix, index)| {
            let rest = path.strip_prefix(prefix.as_str())?;
            match rest {
                "" => Some(RouteMatch {
                    index: *index,
                    path: "/",
                }),
                r if r.starts_with('/') => Some(RouteMatch {
                    index: *index,
                    path: r,
                }),
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let hosts_crm = vec!["crm.example.com".to_string()];
        let none: Vec<String> = vec![];
        RouteTable::new(
            [
                (Some("/crm"), hosts_crm.as_slice()),
                (Some("/crm/admin"), none.as_slice()),
            ]
            .into_iter(),
        )
    }

    fn find(t: &RouteTable, uri: &str) -> Option<(usize, String)> {
        let uri: Uri = uri.parse().ok()?;
        let absolute = uri.authority().is_some();
        t.find(&uri, absolute)
            .map(|m| (m.index, m.path.to_string()))
    }

    #[test]
    fn prefix_matches_on_segment_boundary_and_is_stripped() {
        let t = table();
        assert_eq!(
            find(&t, "/crm/v1/invoices?x=1"),
            Some((0, "/v1/invoices".into()))
        );
        assert_eq!(find(&t, "/crm"), Some((0, "/".into())));
        assert_eq!(find(&t, "/crmx/v1"), None);
        assert_eq!(find(&t, "/other"), None);
    }

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(
            find(&table(), "/crm/admin/users"),
            Some((1, "/users".into()))
        );
    }

    #[test]
    fn http2_authority_does_not_make_a_request_absolute_form() -> anyhow::Result<()> {
        let uri: Uri = "http://127.0.0.1:15001/crm/v1".parse()?;
        assert_eq!(table().find(&uri, false).map(|m| m.path), Some("/v1"));
        Ok(())
    }

    #[test]
    fn absolute_form_matches_by_host_and_keeps_path() {
        let t = table();
        assert_eq!(
            find(&t, "http://CRM.example.com/v1/x"),
            Some((0, "/v1/x".into()))
        );
        assert_eq!(
            find(&t, "http://crm.example.com:8080/crm/v1"),
            Some((0, "/crm/v1".into()))
        );
        assert_eq!(find(&t, "http://evil.example.com/crm/v1"), None);
    }
}
