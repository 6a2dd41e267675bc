//! The approvers' side of the admin port: the JSON API ([`api`]) and the web page
//! ([`page`]), both opened by an approver's credential. The queue itself (store,
//! transitions, the agent's poll) is the domain, in `crate::approval`; deciding runs
//! through the pipeline, which executes an approved request.

pub mod api;
pub mod page;

use crate::approval::auth::ApproverAuth;
use crate::approval::store::State;
use crate::approval::Approvals;
use crate::pipeline::Proxy;
use crate::response::{error, ResponseBody};
use api::{auth_error, read_comment};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;

/// The approver's side of the admin port: API and web page.
pub struct ApproverSide {
    pub proxy: Arc<Proxy>,
    pub approvals: Arc<Approvals>,
    pub auth: ApproverAuth,
    pub sessions: page::Sessions,
}

impl ApproverSide {
    /// Answers approver requests; `Err` hands the request back when the path is not ours.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Request<Incoming>> {
        let path = request.uri().path().to_string();
        if path == "/ui" || path.starts_with("/ui/") {
            return Ok(self.page(request).await);
        }
        let Some(rest) = path
            .strip_prefix("/approvals")
            .filter(|r| r.is_empty() || r.starts_with('/'))
        else {
            return Err(request);
        };
        let approver = match self.auth.from_headers(request.headers()) {
            Ok(approver) => approver,
            Err(e) => return Ok(auth_error(e)),
        };
        let rest = rest.trim_start_matches('/');
        let method = request.method().clone();
        let (id, action) = match rest.split_once('/') {
            Some((id, action)) => (id.to_string(), Some(action.to_string())),
            None => (rest.to_string(), None),
        };
        Ok(match (method, id.as_str(), action.as_deref()) {
            (Method::GET, "", None) => self.list(request.uri().query()).await,
            (Method::GET, id, None) => self.show(id).await,
            (Method::POST, id, Some(action @ ("approve" | "deny"))) => {
                let comment = match read_comment(request).await {
                    Ok(comment) => comment,
                    Err(response) => return Ok(response),
                };
                let to = if action == "approve" {
                    State::Approved
                } else {
                    State::Denied
                };
                self.decide(id, &approver, comment, to).await
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such approvals endpoint",
            ),
        })
    }
}
