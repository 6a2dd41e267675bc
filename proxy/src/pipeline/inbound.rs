//! The request as the policy judges it: one value, built by the front phases from a
//! live request or from a stored one (an approved execution), so both are read the same
//! way, judged on the same input and sent upstream by the same code.

use super::request::{self, BodyView};
use super::{forward, input, Route};
use crate::approval::store::Approval;
use crate::dedup::key::{self as dedup_key, ClientKey, Fingerprint};
use crate::dedup::state::StoredHeader;
use crate::identity::{User, Verifier};
use crate::policy::decision::Decision;
use crate::refusal::Refusal;
use crate::trace::context::TraceContext;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::Full;
use regorus::Value;
use std::time::SystemTime;

/// What the front phases learnt about one request.
pub(super) struct Inbound {
    /// The request line's method: what goes upstream.
    pub method: Method,
    /// What the upstream will perform (an honoured method override, else `method`): what
    /// the policy judges and the dedup fingerprint covers.
    pub effective: Method,
    /// The path below the route's prefix, as sent.
    pub path: String,
    /// The whole path as the agent sent it (prefix included), for people reading it.
    pub received_path: String,
    pub query: Option<String>,
    /// The path's percent-decoded segments, checked safe.
    pub segments: Vec<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub view: BodyView,
    pub user: Option<User>,
    /// The agent's `Idempotency-Key`, on unsafe methods.
    pub client_key: Option<ClientKey>,
}

impl Inbound {
    /// A parked request, read again under its route's current settings: the same checks
    /// a live request passes, in the same order. A refusal here fails the approval.
    pub fn stored(route: &Route, a: &Approval) -> Result<Inbound, Refusal> {
        let method = Method::from_bytes(a.request.method.as_bytes())
            .map_err(|_| Refusal::BadPath("the stored method is invalid"))?;
        let headers = stored_headers(&a.request.headers);
        let segments = request::path_segments(&a.request.path)?;
        let effective =
            request::effective_method(&method, &headers, route.config.allow_method_override)?;
        let user = a.user_claims.clone().map(|claims| User {
            sub: a.user.clone(),
            claims: Value::from(claims),
            token: None,
        });
        let client_key = client_key(&headers, &effective)?;
        let view = request::view_body(&headers, &a.body, &route.config)?;
        Ok(Inbound {
            method,
            effective,
            path: a.request.path.clone(),
            received_path: a.request.received_path.clone(),
            query: a.request.query.clone(),
            segments,
            headers,
            body: Bytes::from(a.body.clone()),
            view,
            user,
            client_key,
        })
    }

    /// The request's own fingerprint, binding the agent's `Idempotency-Key` to it; only
    /// when the agent sent a key.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.client_key.as_ref()?;
        let body = match self.view.document() {
            Some(value) => dedup_key::Body::Json(value),
            None => dedup_key::Body::Bytes(&self.body),
        };
        Some(Fingerprint::of_request(
            self.effective.as_str(),
            &self.path,
            self.query.as_deref(),
            body,
        ))
    }

    /// The policy input (contract version [`input::INPUT_VERSION`]); `approval` is
    /// `null` for a live request.
    pub fn input(&self, route: &Route, identity: Option<&Verifier>, approval: Value) -> Value {
        let parts = input::InputParts {
            route: &route.config.name,
            mode: route.config.mode.as_str(),
            method: &self.effective,
            path: &self.path,
            segments: &self.segments,
            query: self.query.as_deref(),
            headers: &self.headers,
            hidden: [
                identity.map(Verifier::header),
                route.credential.as_ref().map(|c| c.header()),
            ],
            body: &self.view,
            body_bytes: self.body.len(),
            user: self.user.as_ref(),
            credential: route.credential.as_ref().map_or(Value::Null, |c| {
                c.acting(
                    self.user.as_ref().and_then(|u| u.sub.as_deref()),
                    self.user.as_ref().map(|u| &u.claims),
                )
                .input()
            }),
            now_ns: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        };
        input::build_with_approval(parts, approval)
    }

    /// The upstream request: the route's target and credential, the decision's
    /// obligations, the trace context. The agent's `Idempotency-Key` and the route's
    /// upstream idempotency header are lastmile's to set: the agent's copies never cross.
    pub fn upstream_request(
        self,
        route: &Route,
        identity: Option<&Verifier>,
        credential: Option<HeaderValue>,
        decision: Option<&Decision>,
        trace: &TraceContext,
    ) -> Result<Request<Full<Bytes>>, Refusal> {
        let mut headers = self.headers;
        headers.remove(dedup_key::IDEMPOTENCY_KEY);
        if let Some(name) = &route.config.dedup.upstream_idempotency_header {
            headers.remove(name);
        }
        let outbound = forward::Outbound {
            method: self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers,
            body: self.body,
        };
        forward::build(
            &route.config.upstream,
            outbound,
            identity.map(Verifier::header),
            route
                .credential
                .as_ref()
                .map(|c| c.header())
                .zip(credential),
            decision,
            trace,
        )
    }
}

/// The agent's `Idempotency-Key`, validated; ignored on safe methods, which change
/// nothing to deduplicate.
pub(super) fn client_key(
    headers: &HeaderMap,
    effective: &Method,
) -> Result<Option<ClientKey>, Refusal> {
    Ok(ClientKey::from_headers(headers)
        .map_err(Refusal::InvalidIdempotencyKey)?
        .filter(|_| !effective.is_safe()))
}

fn stored_headers(stored: &[StoredHeader]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for h in stored {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}
