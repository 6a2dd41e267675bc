//! The agent's view of its approval, on the data port: the state while it is open, and
//! once executed the upstream's real status, headers and body. `?wait=30s` holds the
//! request until the approval changes (or the wait ends), so agents need not spin.

use super::store::{Approval, State};
use super::{rfc3339, valid_id, Approvals};
use crate::config::POLL_PATH;
use crate::refusal::Refusal;
use crate::response::{json_response, replay, ResponseBody, REPLAYED_HEADER};
use http::{HeaderValue, Response, StatusCode};
use std::time::Duration;

/// Response header naming the approval an answer belongs to.
pub const ID_HEADER: &str = "lastmile-approval-id";
/// Response header carrying the approval's state.
pub const STATE_HEADER: &str = "lastmile-approval-state";

/// The wait an agent asked for in the query (`wait=30s`, `wait=30`), capped.
pub fn wait_from_query(query: Option<&str>, max: Duration) -> Result<Duration, Refusal> {
    let Some((_, value)) =
        form_urlencoded::parse(query.unwrap_or("").as_bytes()).find(|(k, _)| k == "wait")
    else {
        return Ok(Duration::ZERO);
    };
    let parsed = match value.parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(&value),
    };
    parsed
        .map(|d| d.min(max))
        .map_err(|_| Refusal::BadPath("the wait parameter must be a duration such as 30s"))
}

/// Answers a poll by the acting user `user` (its `sub`), waiting up to `wait` for an
/// open approval to finish.
pub async fn poll(
    approvals: &Approvals,
    id: &str,
    user: Option<&str>,
    wait: Duration,
) -> Result<Response<ResponseBody>, Refusal> {
    if !valid_id(id) {
        return Err(Refusal::ApprovalNotFound);
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = approvals.watch();
    loop {
        changes.borrow_and_update();
        let approval = approvals
            .get(id)
            .await
            .map_err(|_| Refusal::ApprovalStoreUnavailable)?
            .ok_or(Refusal::ApprovalNotFound)?;
        // Only the user who made the request may see it (and its upstream response).
        if approval.user.as_deref() != user {
            return Err(Refusal::ApprovalForbidden);
        }
        if approval.state.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(view(approval));
        }
        Approvals::changed(&mut changes, deadline).await;
    }
}

fn view(approval: Approval) -> Response<ResponseBody> {
    let state = approval.state;
    let mut response = match (&approval.response, state) {
        (Some(stored), _) => replay_without_marker(stored.clone()),
        (None, State::Pending | State::Approved | State::Executing) => {
            json_response(StatusCode::ACCEPTED, open_body(&approval).to_string())
        }
        (None, _) => json_response(final_status(&approval), final_body(&approval).to_string()),
    };
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&approval.id) {
        headers.insert(ID_HEADER, id);
    }
    headers.insert(STATE_HEADER, HeaderValue::from_static(state.as_str()));
    response
}

/// The stored upstream response, exactly as it came (not marked as a dedup replay).
fn replay_without_marker(stored: crate::dedup::state::StoredResponse) -> Response<ResponseBody> {
    let mut response = replay(stored);
    response.headers_mut().remove(REPLAYED_HEADER);
    response
}

fn open_body(a: &Approval) -> serde_json::Value {
    let status = match a.state {
        State::Pending => "pending_approval",
        other => other.as_str(),
    };
    serde_json::json!({
        "status": status,
        "approval_id": a.id,
        "poll_url": format!("{POLL_PATH}{}", a.id),
        "expires_at": rfc3339(a.expires_ms),
        "reasons": a.reasons,
        "approved_by": a.decided_by,
        "approved_at": a.decided_ms.map(rfc3339),
    })
}

/// Ended without an upstream response: denied, expired, or failed before sending. A
/// failure answers with the status it was stored with (its refusal's, as on the data
/// path); failures stored before lastmile kept the status are mapped by their code.
fn final_status(a: &Approval) -> StatusCode {
    let stored = a
        .failure
        .as_ref()
        .and_then(|f| f.status)
        .and_then(|s| StatusCode::from_u16(s).ok());
    match (a.state, stored) {
        (State::Denied, _) => StatusCode::FORBIDDEN,
        (State::Expired, _) => StatusCode::GONE,
        (State::OutcomeUnknown, _) => StatusCode::GATEWAY_TIMEOUT,
        (_, Some(status)) => status,
        (_, None) => legacy_status(a),
    }
}

/// The status of a failure stored without one, by its code.
fn legacy_status(a: &Approval) -> StatusCode {
    match (a.state, a.failure.as_ref().map(|f| f.code.as_str())) {
        (_, Some("denied" | "policy_error")) => StatusCode::FORBIDDEN,
        (_, Some("credential_unavailable" | "route_gone")) => StatusCode::INTERNAL_SERVER_ERROR,
        // The dedup window refused it: an identical request is in flight or its outcome
        // is unknown; nothing was sent for this approval.
        (
            _,
            Some(
                "duplicate_in_flight"
                | "outcome_unknown"
                | "completed_not_retained"
                | "idempotency_key_mismatch",
            ),
        ) => StatusCode::CONFLICT,
        (_, Some("dedup_store_full" | "dedup_unavailable")) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn final_body(a: &Approval) -> serde_json::Value {
    let (code, message, reasons) = match (a.state, &a.failure) {
        (State::Denied, _) => (
            "approval_denied".to_string(),
            "an approver denied this request; it was not sent".to_string(),
            a.reasons.clone(),
        ),
        (State::Expired, _) => (
            "approval_expired".to_string(),
            "nobody decided on this request in time; it was not sent".to_string(),
            a.reasons.clone(),
        ),
        (_, Some(f)) => (f.code.clone(), f.message.clone(), f.reasons.clone()),
        (_, None) => (
            "approval_failed".to_string(),
            "the approved request did not complete".to_string(),
            Vec::new(),
        ),
    };
    let mut body = serde_json::json!({
        "status": a.state.as_str(),
        "approval_id": a.id,
        "decided_by": a.decided_by,
        "decided_at": a.decided_ms.map(rfc3339),
        "comment": a.comment,
        "error": {"code": code, "message": message, "reasons": reasons, "trace_id": a.trace_id},
    });
    if a.state == State::OutcomeUnknown {
        body["error"]["outcome"] = "unknown".into();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_parsed_and_capped() {
        let max = Duration::from_secs(60);
        let wait = |q: Option<&str>| wait_from_query(q, max).ok();
        assert_eq!(wait(None), Some(Duration::ZERO));
        assert_eq!(wait(Some("wait=30s")), Some(Duration::from_secs(30)));
        assert_eq!(wait(Some("x=1&wait=5")), Some(Duration::from_secs(5)));
        assert_eq!(wait(Some("wait=500ms")), Some(Duration::from_millis(500)));
        assert_eq!(wait(Some("wait=2h")), Some(max));
        assert_eq!(wait(Some("wait=soon")), None);
    }
}
