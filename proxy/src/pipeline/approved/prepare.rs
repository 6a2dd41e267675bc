//! Rebuilding a parked request and asking the policy again, now with `input.approval`.

use super::super::dedup::{self as dedup_step};
use super::super::{forward, input, request, Proxy, Route};
use super::{failure, Ready};
use crate::approval::rfc3339;
use crate::approval::store::{Approval, Failure};
use crate::config::Mode;
use crate::dedup::key::{self as dedup_key, ClientKey, Fingerprint};
use crate::dedup::state::StoredHeader;
use crate::identity::User;
use crate::policy::decision::{self, Verdict};
use crate::refusal::Refusal;
use crate::trace::context::TraceContext;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use regorus::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;

impl Proxy {
    /// Re-evaluates the policy and builds the upstream request, or says why not.
    pub(super) fn prepare(&self, a: &Approval) -> Result<Ready, Failure> {
        let index = self
            .routes
            .iter()
            .position(|r| r.config.name == a.route)
            .ok_or_else(|| failure("route_gone", "the request's route is no longer configured"))?;
        let route = &self.routes[index];
        let bad = |r: Refusal| Failure {
            code: r.code().into(),
            message: r.to_string(),
            reasons: Vec::new(),
        };
        let method = Method::from_bytes(a.request.method.as_bytes())
            .map_err(|_| failure("bad_request", "the stored method is invalid"))?;
        let headers = stored_headers(&a.request.headers);
        let segments = request::path_segments(&a.request.path).map_err(bad)?;
        // The same reading as the data path's, under the route's current settings.
        let effective =
            request::effective_method(&method, &headers, route.config.allow_method_override)
                .map_err(bad)?;
        let view = request::view_body(&headers, &a.body, &route.config).map_err(bad)?;
        let user = a.user_claims.clone().map(|claims| User {
            sub: a.user.clone(),
            claims: Value::from(claims),
        });
        let body = Bytes::from(a.body.clone());
        let client_key = ClientKey::from_headers(&headers)
            .map_err(|e| bad(Refusal::InvalidIdempotencyKey(e)))?
            .filter(|_| !effective.is_safe());
        let fingerprint = client_key.as_ref().map(|_| {
            let b = match view.document() {
                Some(value) => dedup_key::Body::Json(value),
                None => dedup_key::Body::Bytes(&body),
            };
            Fingerprint::of_request(
                effective.as_str(),
                &a.request.path,
                a.request.query.as_deref(),
                b,
            )
        });
        let decision = self.reevaluate(
            route,
            a,
            &effective,
            segments,
            &headers,
            view,
            user.as_ref(),
        )?;
        let attempt = match route.config.mode {
            Mode::Enforce => dedup_step::attempt(dedup_step::Facts {
                route: &route.config,
                decision: Some(&decision),
                client_key: client_key.as_ref(),
                request_fingerprint: fingerprint,
                user: user.as_ref(),
            }),
            Mode::DryRun => None,
        };
        let mut headers = headers;
        if attempt.is_some() {
            headers.remove(dedup_key::IDEMPOTENCY_KEY);
        }
        let outbound = forward::Outbound {
            method,
            path: &a.request.path,
            query: a.request.query.as_deref(),
            headers,
            body,
        };
        let request = forward::build(
            &route.config.upstream,
            outbound,
            self.identity
                .as_ref()
                .map(crate::identity::Verifier::header),
            route.credential.as_ref(),
            Some(&decision),
            &TraceContext::within(&a.trace_id),
        )
        .map_err(bad)?;
        Ok(Ready {
            route: index,
            request,
            attempt,
        })
    }

    /// The policy again, on the current bundle, with `input.approval` set. Its approval
    /// reasons no longer park (this is the approved execution); a deny still refuses.
    #[allow(clippy::too_many_arguments)]
    fn reevaluate(
        &self,
        route: &Route,
        a: &Approval,
        method: &Method,
        segments: Vec<String>,
        headers: &HeaderMap,
        view: request::BodyView,
        user: Option<&User>,
    ) -> Result<decision::Decision, Failure> {
        let mut approval = BTreeMap::new();
        approval.insert(
            Value::from("approved_by"),
            Value::from(a.decided_by.clone().unwrap_or_default()),
        );
        approval.insert(
            Value::from("approved_at"),
            Value::from(a.decided_ms.map(rfc3339).unwrap_or_default()),
        );
        approval.insert(Value::from("approval_id"), Value::from(a.id.as_str()));
        let parts = input::InputParts {
            route: &route.config.name,
            mode: route.config.mode.as_str(),
            method,
            path: &a.request.path,
            segments,
            query: a.request.query.as_deref(),
            headers,
            hidden: [
                self.identity
                    .as_ref()
                    .map(crate::identity::Verifier::header),
                route.credential.as_ref().map(|c| c.header()),
            ],
            body: view,
            body_bytes: a.body.len(),
            user,
            now_ns: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        };
        let input = input::build_with_approval(parts, Value::from(approval));
        let policy = self.policy.current();
        let decision = policy
            .evaluate(input)
            .map_err(|e| format!("evaluation failed: {e}"))
            .and_then(|value| decision::parse(&value).map_err(|e| e.to_string()))
            .map_err(|detail| {
                failure(
                    "policy_error",
                    format!(
                        "the policy did not produce a valid decision on re-evaluation: {detail}"
                    ),
                )
            })?;
        if decision.verdict() == Verdict::Deny {
            return Err(Failure {
                code: "denied".into(),
                message: format!(
                    "the policy ({}) now denies this request; it was not sent",
                    policy.revision()
                ),
                reasons: decision.deny,
            });
        }
        Ok(decision)
    }
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
