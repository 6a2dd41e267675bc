//! lastmile's own endpoints on the data port: approval polls and trace annotations.
//! They answer for lastmile itself, so they are never routed nor judged by the policy.

use super::journal::Journal;
use super::receive::Parsed;
use super::{Forwarded, Proxy};
use crate::refusal::Refusal;
use crate::trace::context::TraceContext;
use std::ops::ControlFlow;

impl Proxy {
    /// Answers a poll or an annotation (`Break`), or hands the request back for its
    /// route (`Continue`).
    pub(super) async fn serve_own_endpoint(
        &self,
        parsed: Parsed,
        trace: &TraceContext,
        journal: &mut Journal,
    ) -> ControlFlow<Result<Forwarded, Refusal>, Parsed> {
        if let Some(id) = parsed.poll_id() {
            return ControlFlow::Break(self.serve_poll(id, &parsed, journal).await);
        }
        if let Some(trace_id) = parsed.annotated_trace() {
            let trace_id = trace_id.to_string();
            let answer = self.serve_annotation(&trace_id, parsed, trace, journal);
            return ControlFlow::Break(answer.await);
        }
        ControlFlow::Continue(parsed)
    }

    /// Only the user who parked an approval may poll it, so the poll names its user.
    async fn serve_poll(
        &self,
        id: &str,
        parsed: &Parsed,
        journal: &mut Journal,
    ) -> Result<Forwarded, Refusal> {
        let user = self.verify_user(&parsed.parts)?;
        journal.user = user.and_then(|u| u.sub);
        self.poll(id, &parsed.parts, journal.user.as_deref()).await
    }

    /// The annotation is recorded like a call, under the user who sent it.
    async fn serve_annotation(
        &self,
        trace_id: &str,
        parsed: Parsed,
        trace: &TraceContext,
        journal: &mut Journal,
    ) -> Result<Forwarded, Refusal> {
        let user = self.verify_user(&parsed.parts)?;
        journal.user = user.and_then(|u| u.sub);
        let (answer, record) = self
            .annotate(
                trace_id,
                parsed.parts,
                parsed.body,
                journal.user.as_deref(),
                trace,
            )
            .await?;
        journal.annotation = Some(record);
        Ok(answer)
    }
}
