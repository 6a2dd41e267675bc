//! Parking a request the policy sent for approval: it is stored durably before the
//! agent gets its `202`, with everything needed to execute it later and a redacted view
//! for the approver.

use super::inbound::Inbound;
use super::outcome::Outcome;
use super::{Forwarded, Proxy, Route};
use crate::approval::store::{NewApproval, StoredRequest};
use crate::approval::{self, rfc3339};
use crate::config::POLL_PATH;
use crate::dedup::state::StoredHeader;
use crate::headers::NEVER_STORED;
use crate::identity::Verifier;
use crate::policy::decision::Decision;
use crate::refusal::Refusal;
use crate::response::{json_response, ResponseBody};
use crate::trace::context::TraceContext;
use crate::trace::redact;
use bytes::Bytes;
use http::{Method, Response, StatusCode};

/// Summaries of bodies larger than this show only their size.
const SUMMARY_BODY_LIMIT: usize = 64 * 1024;

impl Proxy {
    /// Park: the request is stored durably before the agent gets its `202` (with the
    /// approval's id and poll URL); nothing goes upstream until a person approves. A
    /// store that cannot be written refuses (503, retry safe: nothing was parked).
    /// Returns the 202 and the approval's id.
    pub(super) async fn park(
        &self,
        route: &Route,
        inbound: Inbound,
        decision: Decision,
        policy_revision: &str,
        trace: &TraceContext,
    ) -> Result<(Forwarded, String), Refusal> {
        let reasons = decision.approval.clone();
        let approvals = self
            .approvals
            .as_ref()
            .ok_or_else(|| Refusal::ApprovalUnavailable(reasons.clone()))?;
        let dedup_key = self
            .attempt(route, &inbound, Some(&decision))
            .map(|a| a.key.to_string());
        let now = approvals.now_ms();
        let expiry = approvals.expiry_for(route.config.approval_expire_after);
        let user = inbound.user.as_ref();
        let new = NewApproval {
            id: approval::new_id().map_err(|_| Refusal::ApprovalStoreUnavailable)?,
            route: route.config.name.clone(),
            user: user.and_then(|u| u.sub.clone()),
            user_claims: user.and_then(|u| serde_json::to_value(&u.claims).ok()),
            dedup_key,
            trace_id: trace.trace_id.clone(),
            policy_revision: policy_revision.to_string(),
            reasons,
            request: self.stored_request(route, &inbound),
            body: inbound.body.to_vec(),
            summary: self.summary(
                &inbound.method,
                &inbound.received_path,
                inbound.query.as_deref(),
                &inbound.body,
            ),
            created_ms: now,
            expires_ms: now.saturating_add(crate::dedup::clock::ms(expiry)),
        };
        let parked = approvals.park(new).await.map_err(|e| {
            tracing::error!(error = %e, "parking a request for approval");
            Refusal::ApprovalStoreUnavailable
        })?;
        let a = &parked.approval;
        let forwarded = Forwarded {
            response: accepted(a, trace),
            outcome: Outcome::PendingApproval,
        };
        Ok((forwarded, a.id.clone()))
    }

    /// What execution needs of the request, later: everything but the credentials and
    /// the identity token (the verified claims are kept instead).
    fn stored_request(&self, route: &Route, inbound: &Inbound) -> StoredRequest {
        let hidden = [
            self.identity.as_ref().map(Verifier::header),
            route.credential.as_ref().map(|c| c.header()),
        ];
        let headers = inbound
            .headers
            .iter()
            .filter(|(name, _)| {
                !NEVER_STORED.contains(&name.as_str()) && !hidden.contains(&Some(*name))
            })
            .map(|(name, value)| StoredHeader {
                name: name.as_str().to_string(),
                value: Bytes::copy_from_slice(value.as_bytes()),
            })
            .collect();
        StoredRequest {
            method: inbound.method.to_string(),
            path: inbound.path.clone(),
            query: inbound.query.clone(),
            headers,
            received_path: inbound.received_path.clone(),
        }
    }

    /// What an approver sees of the request: method, path, query and JSON body with the
    /// configured fields redacted. Never headers (they may carry secrets of their own).
    fn summary(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &Bytes,
    ) -> serde_json::Value {
        let mut query_map = serde_json::Map::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let entry = query_map
                .entry(k.into_owned())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(values) = entry {
                values.push(v.into_owned().into());
            }
        }
        let mut query_value = serde_json::Value::Object(query_map);
        redact::redact(&mut query_value, &self.trace.redact_fields);
        let body_value = if body.is_empty() {
            serde_json::Value::Null
        } else if body.len() > SUMMARY_BODY_LIMIT {
            serde_json::json!({"omitted_bytes": body.len()})
        } else {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(mut json) => {
                    redact::redact(&mut json, &self.trace.redact_fields);
                    json
                }
                Err(_) => serde_json::json!({"non_json_bytes": body.len()}),
            }
        };
        serde_json::json!({
            "method": method.as_str(),
            "path": path,
            "query": query_value,
            "body": body_value,
        })
    }
}

/// The agent's `202`: the approval's id, where to poll, until when, and why.
fn accepted(a: &crate::approval::store::Approval, trace: &TraceContext) -> Response<ResponseBody> {
    let body = serde_json::json!({
        "status": Outcome::PendingApproval.label(),
        "approval_id": a.id,
        "poll_url": format!("{POLL_PATH}{}", a.id),
        "expires_at": rfc3339(a.expires_ms),
        "reasons": a.reasons,
        "trace_id": trace.trace_id,
    });
    let mut response = json_response(StatusCode::ACCEPTED, body.to_string());
    if let Ok(location) = http::HeaderValue::from_str(&format!("{POLL_PATH}{}", a.id)) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    response
}
