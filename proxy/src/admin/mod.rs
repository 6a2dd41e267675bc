//! The admin port: metrics, health, readiness, recent traces and dedup entries, and the
//! approvers' side. It is separate from the data port so the agent's traffic and the
//! operator's never share a listener, but the agent shares the pod's network namespace:
//! the port is no boundary. Only `/metrics`, `/healthz` and `/readyz` are open; every
//! endpoint that reveals request data or changes state needs the operator's token (or,
//! on the approvals API and page, an approver's credential).

pub mod approvals;
mod operator;

use crate::admin_token::OperatorToken;
use crate::dedup::store::DedupStore;
use crate::metrics::Metrics;
use crate::policy::PolicyStore;
use crate::response::{error, ResponseBody};
use crate::trace::TraceSink;
use approvals::ApproverSide;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use operator::healthz;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What the admin endpoints read.
pub struct Admin {
    pub metrics: Metrics,
    pub traces: TraceSink,
    pub policy: Arc<PolicyStore>,
    /// Set once serving starts, cleared when draining, so orchestrators stop routing
    /// traffic here before the process exits.
    pub ready: AtomicBool,
    pub dedup: Arc<dyn DedupStore>,
    /// The operator's token: opens traces, dedup entries and releases; without one
    /// they are disabled.
    pub operator: OperatorToken,
    /// The approvers' API and page, when approvals are configured.
    pub approvers: Option<ApproverSide>,
}

impl Admin {
    /// Routes one admin request: the approvers' side first (`/approvals…`, `/ui…`), then
    /// the operator endpoints; anything else is a JSON `not_found`.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let request = match &self.approvers {
            Some(approvers) => match approvers.handle(request).await {
                Ok(response) => return response,
                Err(request) => request,
            },
            None => request,
        };
        self.handle_operator(&request).await
    }

    async fn handle_operator<B>(&self, request: &Request<B>) -> Response<ResponseBody> {
        let path = request.uri().path();
        if request.method() == Method::POST {
            return match path
                .strip_prefix("/dedup/")
                .and_then(|rest| rest.strip_suffix("/release"))
            {
                Some(key) => match self.unauthorized(request) {
                    None => self.release(key).await,
                    Some(refused) => refused,
                },
                None => error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint"),
            };
        }
        if request.method() != Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the admin API answers GET, and POST on /dedup/{key}/release",
            );
        }
        match path {
            "/metrics" => self.metrics().await,
            "/healthz" => healthz(),
            "/readyz" => self.readyz(),
            path => {
                if let Some(id) = path.strip_prefix("/traces/") {
                    match self.unauthorized(request) {
                        None => self.trace(id),
                        Some(refused) => refused,
                    }
                } else if let Some(key) = path.strip_prefix("/dedup/") {
                    match self.unauthorized(request) {
                        None => self.dedup_entry(key).await,
                        Some(refused) => refused,
                    }
                } else {
                    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
                }
            }
        }
    }
}
