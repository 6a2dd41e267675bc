//! The front phases of a live request, in the order they run: parse, route, check the
//! headers, identify, read the body. Each refuses with a [`Refusal`] whose fault is the
//! agent's (a retry of the same request gets the same answer) unless it says otherwise;
//! none has sent anything upstream.

use super::inbound::{client_key, Inbound};
use super::request;
use super::{Proxy, Route};
use crate::identity::{User, Verifier};
use crate::refusal::Refusal;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request};
use hyper::body::Incoming;

/// A request whose framing is sound, split into head and body.
pub(super) struct Parsed {
    pub parts: Parts,
    pub body: Incoming,
    /// `GET http://host/path` (an `HTTP_PROXY` client): routed by host.
    pub absolute_form: bool,
}

impl Parsed {
    /// The approval id of a poll (`GET /_lastmile/approvals/{id}` on the data port).
    pub fn poll_id(&self) -> Option<&str> {
        if self.absolute_form {
            return None;
        }
        self.parts.uri.path().strip_prefix(crate::config::POLL_PATH)
    }

    /// The trace id of an annotation (`POST /_lastmile/traces/{id}/annotations` on the
    /// data port).
    pub fn annotated_trace(&self) -> Option<&str> {
        if self.absolute_form {
            return None;
        }
        self.parts
            .uri
            .path()
            .strip_prefix(crate::config::TRACES_PATH)?
            .strip_suffix("/annotations")
    }
}

/// Parse: refuses CONNECT (a tunnel cannot be inspected) and framing two parsers could
/// read differently.
pub(super) fn parse(request: Request<Incoming>) -> Result<Parsed, Refusal> {
    if request.method() == Method::CONNECT {
        return Err(Refusal::Connect);
    }
    request::check_framing(request.headers())?;
    let (parts, body) = request.into_parts();
    let absolute_form = parts.version < http::Version::HTTP_2 && parts.uri.authority().is_some();
    Ok(Parsed {
        parts,
        body,
        absolute_form,
    })
}

/// Where a request goes: its route, the path below the route's prefix, and that path's
/// decoded segments (refusing paths an upstream could normalise differently).
pub(super) struct Routed<'p> {
    /// The route's place in the proxy's routes.
    pub index: usize,
    pub route: &'p Route,
    pub path: String,
    pub segments: Vec<String>,
}

impl Proxy {
    /// Route: the configured route the request matches (fail closed: none matches, 404).
    pub(super) fn route(&self, parsed: &Parsed) -> Result<Routed<'_>, Refusal> {
        let matched = self
            .table
            .find(&parsed.parts.uri, parsed.absolute_form)
            .ok_or(Refusal::NoRoute)?;
        let route = self.routes.get(matched.index).ok_or(Refusal::NoRoute)?;
        let segments = request::path_segments(matched.path)?;
        Ok(Routed {
            index: matched.index,
            route,
            path: matched.path.to_string(),
            segments,
        })
    }

    /// Check the headers: none that the next hop could drop or read differently, and
    /// the method the upstream will perform (a method override only where the route
    /// allows one).
    pub(super) fn check_headers(&self, route: &Route, parts: &Parts) -> Result<Method, Refusal> {
        let own: Vec<&http::HeaderName> = [
            self.identity.as_ref().map(Verifier::header),
            route.credential.as_ref().map(|c| c.header()),
        ]
        .into_iter()
        .flatten()
        .collect();
        request::check_connection(&parts.headers, &own)?;
        let singletons: Vec<&http::HeaderName> = own
            .iter()
            .copied()
            .chain(&route.config.dedup.upstream_idempotency_header)
            .collect();
        request::check_singletons(&parts.headers, &singletons)?;
        request::effective_method(
            &parts.method,
            &parts.headers,
            route.config.allow_method_override,
        )
    }

    /// Identify: the acting user from a verified token, when the request carries one;
    /// refused when the token is bad, or missing on a route that requires a user.
    pub(super) fn identify(&self, route: &Route, parts: &Parts) -> Result<Option<User>, Refusal> {
        let user = self.verify_user(parts)?;
        if route.config.require_user && user.is_none() {
            return Err(Refusal::UserRequired);
        }
        Ok(user)
    }

    /// The acting user of a verified token, when identity is configured and the request
    /// carries one; a bad token is refused.
    pub(super) fn verify_user(&self, parts: &Parts) -> Result<Option<User>, Refusal> {
        match &self.identity {
            Some(verifier) => verifier
                .identify(&parts.headers)
                .map_err(Refusal::Unauthenticated),
            None => Ok(None),
        }
    }

    /// Read the body: whole, bounded in size and time, parsed for the policy (JSON or a
    /// form; other types refused unless the route forwards them as opaque). Together with
    /// what the phases before learnt, the request as the policy will judge it.
    pub(super) async fn read(
        &self,
        routed: Routed<'_>,
        parts: Parts,
        body: Incoming,
        effective: Method,
        user: Option<User>,
    ) -> Result<Inbound, Refusal> {
        let route = routed.route;
        let client_key = client_key(&parts.headers, &effective)?;
        let body: Bytes = tokio::time::timeout(
            self.body_read_timeout,
            request::read_body(&parts.headers, body, route.config.max_body_bytes),
        )
        .await
        .map_err(|_| Refusal::BodyTimeout)??;
        let view = request::view_body(&parts.headers, &body, &route.config)?;
        Ok(Inbound {
            method: parts.method,
            effective,
            path: routed.path,
            received_path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            segments: routed.segments,
            headers: parts.headers,
            body,
            view,
            user,
            client_key,
        })
    }
}
