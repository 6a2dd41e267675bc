//! The approver's API on the admin port. Every endpoint needs an approver credential
//! (the queue holds business data), and every decision is recorded with who and when.
//!
//! - `GET  /approvals?state=&route=&user=&limit=`  newest first
//! - `GET  /approvals/{id}`                        one approval with its history
//! - `POST /approvals/{id}/approve`                `{"comment": "..."}` (optional)
//! - `POST /approvals/{id}/deny`                   `{"comment": "..."}`

use super::ApproverSide;
use crate::approval::auth::{Approver, AuthError};
use crate::approval::store::{Approval, Event, Filter, State, StoreError};
use crate::approval::{rfc3339, valid_id};
use crate::config::POLL_PATH;
use crate::pipeline::approved::DecideError;
use crate::response::{error, json_response, ResponseBody};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Request bodies on the approver side are a comment at most.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The whole body must arrive within this time.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Comments longer than this are refused rather than cut.
pub const MAX_COMMENT_CHARS: usize = 2000;

impl ApproverSide {
    /// `GET /approvals?state=&route=&user=&limit=`: newest first.
    pub(super) async fn list(&self, query: Option<&str>) -> Response<ResponseBody> {
        let mut filter = Filter {
            limit: 100,
            ..Filter::default()
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "state" => match State::parse(&v) {
                    Some(state) => filter.state = Some(state),
                    None => return error(StatusCode::BAD_REQUEST, "bad_filter", "unknown state"),
                },
                "route" => filter.route = Some(v.into_owned()),
                "user" => filter.user = Some(v.into_owned()),
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => filter.limit = n,
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_filter",
                            "limit must be 1 to 1000",
                        )
                    }
                },
                _ => {}
            }
        }
        match self.approvals.list(filter).await {
            Ok(list) => {
                let items: Vec<_> = list.iter().map(view).collect();
                json_response(
                    StatusCode::OK,
                    serde_json::json!({ "approvals": items }).to_string(),
                )
            }
            Err(e) => store_error(&e),
        }
    }

    /// `GET /approvals/{id}`: one approval with its history.
    pub(super) async fn show(&self, id: &str) -> Response<ResponseBody> {
        if !valid_id(id) {
            return not_found();
        }
        let approval = match self.approvals.get(id).await {
            Ok(Some(a)) => a,
            Ok(None) => return not_found(),
            Err(e) => return store_error(&e),
        };
        let events = match self.approvals.events(id).await {
            Ok(events) => events,
            Err(e) => return store_error(&e),
        };
        let mut body = view(&approval);
        body["history"] = history(&events);
        json_response(StatusCode::OK, body.to_string())
    }

    /// Applies a decision for `approver`; shared by the API and the page.
    pub async fn apply(
        &self,
        id: &str,
        approver: &Approver,
        comment: Option<String>,
        to: State,
    ) -> Result<Approval, DecideError> {
        if !valid_id(id) {
            return Err(DecideError::NotFound);
        }
        if to == State::Approved {
            self.proxy.approve(id, approver, comment).await
        } else {
            self.proxy.deny(id, approver, comment).await
        }
    }

    /// `POST /approvals/{id}/approve|deny`: the decision, answered as the approval now is.
    pub(super) async fn decide(
        &self,
        id: &str,
        approver: &Approver,
        comment: Option<String>,
        to: State,
    ) -> Response<ResponseBody> {
        match self.apply(id, approver, comment, to).await {
            Ok(approval) => json_response(StatusCode::OK, view(&approval).to_string()),
            Err(e) => decide_error(e),
        }
    }
}

/// An approval as approvers see it: never the stored headers or raw body, only the
/// redacted summary; of the upstream's answer only its status.
pub fn view(a: &Approval) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "state": a.state.as_str(),
        "route": a.route,
        "user": a.user,
        "reasons": a.reasons,
        "request": a.summary,
        "trace_id": a.trace_id,
        "policy_revision": a.policy_revision,
        "dedup_key": a.dedup_key,
        "created_at": rfc3339(a.created_ms),
        "expires_at": rfc3339(a.expires_ms),
        "decided_by": a.decided_by,
        "decided_at": a.decided_ms.map(rfc3339),
        "comment": a.comment,
        "finished_at": a.finished_ms.map(rfc3339),
        "upstream_status": a.response.as_ref().map(|r| r.status),
        "failure": a.failure,
        "poll_url": format!("{POLL_PATH}{}", a.id),
    })
}

fn history(events: &[Event]) -> serde_json::Value {
    events
        .iter()
        .map(|e| {
            serde_json::json!({
                "at": rfc3339(e.at_ms),
                "actor": e.actor,
                "from": e.from.map(State::as_str),
                "to": e.to.as_str(),
                "comment": e.comment,
            })
        })
        .collect()
}

/// Reads `{"comment": "..."}` (or an empty body).
pub(super) async fn read_comment(
    request: Request<Incoming>,
) -> Result<Option<String>, Response<ResponseBody>> {
    let bytes = read_body(request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        comment: Option<String>,
    }
    let body: Body = serde_json::from_slice(&bytes).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "send {\"comment\": \"...\"} as JSON, or nothing",
        )
    })?;
    check_comment(body.comment).map_err(CommentTooLong::response)
}

/// A comment within the length limit; empty counts as none.
pub fn check_comment(comment: Option<String>) -> Result<Option<String>, CommentTooLong> {
    match comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
    {
        Some(c) if c.chars().count() > MAX_COMMENT_CHARS => Err(CommentTooLong),
        other => Ok(other),
    }
}

/// A comment over [`MAX_COMMENT_CHARS`].
#[derive(Debug, Clone, Copy)]
pub struct CommentTooLong;

impl CommentTooLong {
    pub fn response(self) -> Response<ResponseBody> {
        error(
            StatusCode::BAD_REQUEST,
            "comment_too_long",
            "comments are limited to 2000 characters",
        )
    }
}

/// The request body, up to [`MAX_BODY_BYTES`].
pub async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<ResponseBody>> {
    let collect = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    // A comment arrives at once; a body trickling in would only hold a connection open.
    match tokio::time::timeout(BODY_READ_TIMEOUT, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is too large",
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive in time",
        )),
    }
}

pub fn auth_error(e: AuthError) -> Response<ResponseBody> {
    match e {
        AuthError::Missing | AuthError::Invalid => {
            let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string());
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            response
        }
        AuthError::NotApprover => error(StatusCode::FORBIDDEN, "not_an_approver", &e.to_string()),
        AuthError::Unavailable => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "approvers_unavailable",
            &e.to_string(),
        ),
    }
}

pub fn decide_error(e: DecideError) -> Response<ResponseBody> {
    match e {
        DecideError::Disabled => error(
            StatusCode::NOT_FOUND,
            "approvals_disabled",
            "approvals are not configured",
        ),
        DecideError::NotFound => not_found(),
        DecideError::SelfApproval => error(
            StatusCode::FORBIDDEN,
            "self_approval",
            "an approver may not decide on their own request",
        ),
        DecideError::Conflict(approval) => {
            let body = serde_json::json!({
                "error": {
                    "code": "approval_not_pending",
                    "message": format!("the approval is {}, not pending", approval.state.as_str()),
                },
                "approval": view(&approval),
            });
            json_response(StatusCode::CONFLICT, body.to_string())
        }
        DecideError::Store(e) => store_error(&e),
    }
}

fn not_found() -> Response<ResponseBody> {
    error(
        StatusCode::NOT_FOUND,
        "approval_not_found",
        "no approval has this id",
    )
}

fn store_error(e: &StoreError) -> Response<ResponseBody> {
    tracing::error!(error = %e, "approval store unavailable for an approver request");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "approval_store_unavailable",
        "the approval store is unavailable",
    )
}
