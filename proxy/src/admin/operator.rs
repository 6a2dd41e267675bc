//! The operator's endpoints: metrics, health, readiness, recent traces, and dedup
//! entries with their release. Everything past `/metrics`, `/healthz` and `/readyz` needs
//! the operator's token (see the [`super`] module doc for why).

use super::Admin;
use crate::admin_token::{bearer, OperatorCheck};
use crate::dedup::key::Key;
use crate::dedup::state::{Entry, Released, State};
use crate::response::{error, json_response, text, ResponseBody};
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

/// `GET /healthz`: the process is up and answering.
pub(super) fn healthz() -> Response<ResponseBody> {
    text(StatusCode::OK, "text/plain", "ok\n".into())
}

impl Admin {
    /// `GET /metrics`: Prometheus text, after refreshing the gauges read on demand.
    pub(super) async fn metrics(&self) -> Response<ResponseBody> {
        if let Some(approvers) = &self.approvers {
            approvers.approvals.refresh_pending().await;
        }
        match self.dedup.entries().await {
            Ok(entries) => self
                .metrics
                .dedup_entries
                .set(i64::try_from(entries).unwrap_or(i64::MAX)),
            Err(_) => self
                .metrics
                .dedup_store_errors
                .with_label_values(&["len"])
                .inc(),
        }
        text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            self.metrics.render(),
        )
    }

    /// Checks `Authorization: Bearer <token>` against the operator's token; the
    /// refusal if it fails.
    pub(super) fn unauthorized<B>(&self, request: &Request<B>) -> Option<Response<ResponseBody>> {
        match self.operator.check(bearer(request.headers())) {
            OperatorCheck::Accepted => None,
            OperatorCheck::NotConfigured => Some(error(
                StatusCode::FORBIDDEN,
                "admin_token_not_configured",
                "admin endpoints that reveal request data or change state are disabled: set admin.token_file",
            )),
            OperatorCheck::Unavailable => Some(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "admin_token_unavailable",
                "the admin token could not be read",
            )),
            OperatorCheck::Rejected => {
                let mut refused = error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send the admin token as Authorization: Bearer <token>",
                );
                refused
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Some(refused)
            }
        }
    }

    /// `GET /dedup/{key}`: one live entry, without its stored body.
    pub(super) async fn dedup_entry(&self, key: &str) -> Response<ResponseBody> {
        let Ok(key) = key.parse::<Key>() else {
            return bad_key();
        };
        match self.dedup.get(&key).await {
            Ok(Some(entry)) => json_response(StatusCode::OK, describe(&key, &entry).to_string()),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                "dedup_key_not_found",
                "no live dedup entry has this key",
            ),
            Err(e) => store_unavailable(&e),
        }
    }

    /// `POST /dedup/{key}/release`: frees a key, unless its request is still upstream.
    pub(super) async fn release(&self, key: &str) -> Response<ResponseBody> {
        let Ok(key) = key.parse::<Key>() else {
            return bad_key();
        };
        match self.dedup.release(&key).await {
            Ok(Released::Released) => {
                tracing::info!(%key, "dedup key released by an operator");
                json_response(
                    StatusCode::OK,
                    serde_json::json!({"key": key.to_string(), "released": true}).to_string(),
                )
            }
            Ok(Released::NotFound) => error(
                StatusCode::NOT_FOUND,
                "dedup_key_not_found",
                "no live dedup entry has this key",
            ),
            Ok(Released::InFlight) => error(
                StatusCode::CONFLICT,
                "dedup_key_in_flight",
                "a request holding this key is still upstream; releasing it now could allow a second call",
            ),
            Err(e) => store_unavailable(&e),
        }
    }

    /// `GET /readyz`: 200 while serving, 503 before start-up completes and while draining.
    pub(super) fn readyz(&self) -> Response<ResponseBody> {
        let ready = self.ready.load(Ordering::Relaxed);
        let body = serde_json::json!({"ready": ready, "policy_revision": self.policy.current().revision()});
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, body.to_string())
    }

    /// `GET /traces/{id}`: the recent records of one trace.
    pub(super) fn trace(&self, id: &str) -> Response<ResponseBody> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_trace_id",
                "a trace id is 32 hex digits",
            );
        }
        let records = self.traces.find(id);
        if records.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                "trace_not_found",
                "no recent trace has this id",
            );
        }
        json_response(
            StatusCode::OK,
            format!(
                "{{\"trace_id\":\"{id}\",\"records\":[{}]}}",
                records.join(",")
            ),
        )
    }
}

/// An entry as operators see it: state and times, never the stored body.
fn describe(key: &Key, entry: &Entry) -> serde_json::Value {
    let time = |ms: u64| {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    };
    let mut out = serde_json::json!({
        "key": key.to_string(),
        "state": entry.state.name(),
        "created_at": time(entry.created_ms),
        "expires_at": time(entry.expires_ms),
    });
    match &entry.state {
        State::InFlight { lease_until_ms } => out["lease_until"] = time(*lease_until_ms).into(),
        State::Completed {
            response,
            completed_ms,
        } => {
            out["status"] = response.status.into();
            out["completed_at"] = time(*completed_ms).into();
        }
        State::NotRetained {
            status,
            completed_ms,
        } => {
            out["status"] = (*status).into();
            out["completed_at"] = time(*completed_ms).into();
        }
        State::Unknown {
            reason,
            hold_until_ms,
        } => {
            out["reason"] = reason.as_str().into();
            out["hold_until"] = time(*hold_until_ms).into();
        }
    }
    out
}

fn bad_key() -> Response<ResponseBody> {
    error(
        StatusCode::BAD_REQUEST,
        "bad_dedup_key",
        "a dedup key is 64 hex digits (the lastmile-dedup-key response header)",
    )
}

fn store_unavailable(e: &crate::dedup::store::StoreError) -> Response<ResponseBody> {
    tracing::warn!(error = %e, "dedup store unavailable for an admin request");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "dedup_unavailable",
        "the dedup store is unavailable",
    )
}
