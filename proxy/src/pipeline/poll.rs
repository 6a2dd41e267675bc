//! Polling on the data port: the agent fetches its parked request's state, or the
//! upstream's answer once it was approved and executed.

use super::outcome::Outcome;
use super::{Forwarded, Proxy};
use crate::approval;
use crate::refusal::Refusal;
use http::Method;

impl Proxy {
    /// `GET /_lastmile/approvals/{id}` on the data port: the agent polls its approval,
    /// authenticated as the same acting user that made the request (`sub`, verified
    /// by the caller).
    pub(super) async fn poll(
        &self,
        id: &str,
        parts: &http::request::Parts,
        sub: Option<&str>,
    ) -> Result<Forwarded, Refusal> {
        let approvals = self.approvals.as_ref().ok_or(Refusal::NoRoute)?;
        if parts.method != Method::GET {
            return Err(Refusal::BadPath("approvals are polled with GET"));
        }
        let wait = approval::poll::wait_from_query(parts.uri.query(), approvals.config.max_wait)?;
        let response = approval::poll::poll(approvals, id, sub, wait).await?;
        Ok(Forwarded {
            response,
            outcome: Outcome::ApprovalStatus,
        })
    }
}
