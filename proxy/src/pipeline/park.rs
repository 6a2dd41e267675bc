//! Parking a request the policy sent for approval: it is stored durably before the
//! agent gets its `202`, with everything needed to execute it later and a redacted view
//! for the approver.

use super::{json_response, Forwarded, Proxy, Route, PARKED};
use crate::approval::store::{NewApproval, StoredRequest};
use crate::approval::{self, rfc3339, POLL_PATH};
use crate::dedup::state::StoredHeader;
use crate::identity::{User, Verifier};
use crate::policy::decision::Reason;
use crate::refusal::Refusal;
use crate::trace::context::TraceContext;
use crate::trace::record::{ApprovalTrace, TraceRecord};
use crate::trace::redact;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

/// Summaries of bodies larger than this show only their size.
const SUMMARY_BODY_LIMIT: usize = 64 * 1024;

/// Headers never stored with a parked request: credentials and identity tokens.
const NEVER_STORED: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// What parking needs from the request.
pub(super) struct Parking<'a> {
    pub route: &'a Route,
    pub reasons: Vec<Reason>,
    pub dedup_key: Option<String>,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub received_path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub user: Option<&'a User>,
    pub trace: &'a TraceContext,
    pub record: &'a mut TraceRecord,
}

impl Proxy {
    pub(super) async fn park(&self, p: Parking<'_>) -> Result<Forwarded, Refusal> {
        let approvals = self
            .approvals
            .as_ref()
            .ok_or_else(|| Refusal::ApprovalUnavailable(p.reasons.clone()))?;
        let now = approvals.now_ms();
        let expiry = approvals.expiry_for(p.route.config.approval_expire_after);
        let hidden = [
            self.identity.as_ref().map(Verifier::header),
            p.route.credential.as_ref().map(|c| c.header()),
        ];
        let headers = p
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
        let new = NewApproval {
            id: approval::new_id().map_err(|_| Refusal::ApprovalStoreUnavailable)?,
            route: p.route.config.name.clone(),
            user: p.user.and_then(|u| u.sub.clone()),
            user_claims: p.user.and_then(|u| serde_json::to_value(&u.claims).ok()),
            dedup_key: p.dedup_key,
            trace_id: p.trace.trace_id.clone(),
            policy_revision: p.record.policy_revision.clone().unwrap_or_default(),
            reasons: p.reasons,
            request: StoredRequest {
                method: p.method.to_string(),
                path: p.path.to_string(),
                query: p.query.map(str::to_string),
                headers,
                received_path: p.received_path.to_string(),
            },
            body: p.body.to_vec(),
            summary: self.summary(p.method, p.received_path, p.query, p.body),
            created_ms: now,
            expires_ms: now.saturating_add(crate::dedup::clock::ms(expiry)),
        };
        let parked = approvals.park(new).await.map_err(|e| {
            tracing::error!(error = %e, "parking a request for approval");
            Refusal::ApprovalStoreUnavailable
        })?;
        let a = &parked.approval;
        p.record.approval = Some(ApprovalTrace {
            id: a.id.clone(),
            from: None,
            to: "pending",
            actor: None,
            comment: None,
            failure: None,
        });
        let body = serde_json::json!({
            "status": PARKED,
            "approval_id": a.id,
            "poll_url": format!("{POLL_PATH}{}", a.id),
            "expires_at": rfc3339(a.expires_ms),
            "reasons": a.reasons,
            "trace_id": p.trace.trace_id,
        });
        let mut response = json_response(StatusCode::ACCEPTED, body.to_string());
        if let Ok(location) = http::HeaderValue::from_str(&format!("{POLL_PATH}{}", a.id)) {
            response
                .headers_mut()
                .insert(http::header::LOCATION, location);
        }
        Ok(Forwarded {
            response,
            outcome: PARKED,
        })
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
        redact::redact(&mut query_value, &self.redact_fields);
        let body_value = if body.is_empty() {
            serde_json::Value::Null
        } else if body.len() > SUMMARY_BODY_LIMIT {
            serde_json::json!({"omitted_bytes": body.len()})
        } else {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(mut json) => {
                    redact::redact(&mut json, &self.redact_fields);
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

impl Proxy {
    /// `GET /_lastmile/approvals/{id}` on the data port: the agent polls its approval,
    /// authenticated as the same acting user that made the request.
    pub(super) async fn poll(
        &self,
        id: &str,
        parts: &http::request::Parts,
        record: &mut TraceRecord,
    ) -> Result<Forwarded, Refusal> {
        let approvals = self.approvals.as_ref().ok_or(Refusal::NoRoute)?;
        if parts.method != Method::GET {
            return Err(Refusal::BadPath("approvals are polled with GET"));
        }
        let user = match &self.identity {
            Some(verifier) => verifier
                .identify(&parts.headers)
                .map_err(Refusal::Unauthenticated)?,
            None => None,
        };
        let sub = user.as_ref().and_then(|u| u.sub.clone());
        record.user = sub.clone();
        let wait = approval::poll::wait_from_query(parts.uri.query(), approvals.config.max_wait)?;
        let response = approval::poll::poll(approvals, id, sub.as_deref(), wait).await?;
        Ok(Forwarded {
            response,
            outcome: "approval_status",
        })
    }
}
