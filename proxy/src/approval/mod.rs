//! Human approval: requests the policy marks for approval are parked durably, an
//! approver approves or denies them on the admin port (API or web page), and an approved
//! request is executed exactly once, its upstream result kept for the agent to fetch.
//!
//! [`store`] defines the records and the state machine, [`sqlite`] keeps them, [`auth`]
//! says who an approver is, [`poll`] is the agent's side, [`webhook`] announces new
//! approvals. The approver's API and page are on the admin port (`admin::approvals`).
//! Execution lives with the pipeline (`pipeline::approved`), which owns the routes,
//! credentials and dedup windows it must reuse.

pub mod auth;
pub mod poll;
pub mod sqlite;
pub mod store;
pub mod webhook;

use crate::config::ApprovalConfig;
use crate::dedup::clock::Clock;
use crate::metrics::Metrics;
use crate::trace::record::{ApprovalTrace, Executed, RecordKind, TraceRecord};
use crate::trace::TraceSink;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{
    Approval, ApprovalStore, Event, Filter, NewApproval, Parked, State, StoreError, Transition,
    Transitioned,
};
use tokio::sync::watch;

/// The approval queue: the store, plus what every transition must also do (metrics,
/// trace, waking long-polls).
pub struct Approvals {
    store: Arc<dyn ApprovalStore>,
    clock: Arc<dyn Clock>,
    pub config: ApprovalConfig,
    metrics: Metrics,
    traces: TraceSink,
    /// Bumped after every transition, so long-polls re-read their approval.
    changed: watch::Sender<u64>,
    webhook: Option<webhook::Webhook>,
}

impl Approvals {
    pub fn new(
        config: ApprovalConfig,
        store: Arc<dyn ApprovalStore>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        traces: TraceSink,
    ) -> anyhow::Result<Approvals> {
        let webhook = config
            .webhook
            .clone()
            .map(|w| webhook::Webhook::new(w, config.public_url.clone()))
            .transpose()?;
        Ok(Approvals {
            store,
            clock,
            config,
            metrics,
            traces,
            changed: watch::channel(0).0,
            webhook,
        })
    }

    /// Opens the configured SQLite store.
    pub fn open_store(config: &ApprovalConfig) -> anyhow::Result<Arc<dyn ApprovalStore>> {
        Ok(Arc::new(sqlite::SqliteStore::open(&config.store_path)?))
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Runs a store call on the blocking pool (SQLite blocks on disk).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ApprovalStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError(format!("store task failed: {e}")))?
    }

    /// Parks a request (or finds the pending one with the same dedup key).
    pub async fn park(&self, new: NewApproval) -> Result<Parked, StoreError> {
        let parked = self.blocking(move |s| s.park(&new)).await?;
        if parked.created {
            let approval = &parked.approval;
            self.count(approval, State::Pending);
            self.trace(approval, None, State::Pending, None, None);
            self.refresh_pending().await;
            if let Some(webhook) = &self.webhook {
                webhook.announce(approval);
            }
        }
        Ok(parked)
    }

    /// One approval, with a pending one past its time moved to `expired` first, so
    /// nobody ever sees an expired approval as pending.
    pub async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let id_owned = id.to_string();
        let found = self.blocking(move |s| s.get(&id_owned)).await?;
        match found {
            Some(a) if a.state == State::Pending && a.expires_ms <= self.now_ms() => {
                Ok(Some(self.expire(a).await?))
            }
            other => Ok(other),
        }
    }

    pub async fn list(&self, filter: Filter) -> Result<Vec<Approval>, StoreError> {
        self.sweep().await?;
        self.blocking(move |s| s.list(&filter)).await
    }

    pub async fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        let id = id.to_string();
        self.blocking(move |s| s.events(&id)).await
    }

    /// Applies a transition and, if it happened, records it everywhere.
    pub async fn transition(
        &self,
        id: &str,
        transition: Transition,
    ) -> Result<Transitioned, StoreError> {
        self.transition_traced(id, transition, None).await
    }

    /// [`Approvals::transition`], its trace record completed with what an execution
    /// did.
    pub async fn transition_traced(
        &self,
        id: &str,
        transition: Transition,
        executed: Option<Executed>,
    ) -> Result<Transitioned, StoreError> {
        let owned_id = id.to_string();
        let t = transition.clone();
        let result = self.blocking(move |s| s.transition(&owned_id, &t)).await?;
        if let Transitioned::Done(approval) = &result {
            self.count(approval, transition.to);
            if transition.from == State::Pending {
                if let Some(decided) = approval.decided_ms {
                    self.metrics
                        .approval_decision_seconds
                        .with_label_values(&[approval.route.as_str()])
                        .observe(decided.saturating_sub(approval.created_ms) as f64 / 1000.0);
                }
                self.refresh_pending().await;
            }
            self.trace(
                approval,
                Some(transition.from),
                transition.to,
                Some(&transition.actor),
                executed,
            );
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
        Ok(result)
    }

    async fn expire(&self, approval: Approval) -> Result<Approval, StoreError> {
        let t = Transition::system(State::Pending, State::Expired, self.now_ms());
        Ok(match self.transition(&approval.id, t).await? {
            Transitioned::Done(a) | Transitioned::Conflict(a) => a,
            Transitioned::NotFound => approval,
        })
    }

    /// Expires every pending approval whose time ran out.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let now = self.now_ms();
        let due = self.blocking(move |s| s.expired(now)).await?;
        for id in due {
            let t = Transition::system(State::Pending, State::Expired, now);
            self.transition(&id, t).await?;
        }
        Ok(())
    }

    /// At start-up: an approval left `executing` by a previous process may or may not
    /// have reached the upstream, so it becomes `outcome_unknown` and is never re-sent.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let ids = self.blocking(|s| s.ids_in(State::Executing)).await?;
        let now = self.now_ms();
        for id in &ids {
            let mut t = Transition::system(State::Executing, State::OutcomeUnknown, now);
            t.failure = Some(store::Failure::new(
                "interrupted",
                "lastmile stopped while this request was being executed; it may or may not have reached the upstream, so it is not sent again",
                http::StatusCode::GATEWAY_TIMEOUT,
            ));
            self.transition(id, t).await?;
        }
        if !ids.is_empty() {
            tracing::warn!(
                count = ids.len(),
                "approvals interrupted mid-execution marked outcome_unknown"
            );
        }
        self.refresh_pending().await;
        Ok(ids.len())
    }

    /// Approvals approved but not yet executing when a previous process stopped: nothing
    /// was sent for them, so they may still be executed.
    pub async fn approved_ids(&self) -> Result<Vec<String>, StoreError> {
        self.blocking(|s| s.ids_in(State::Approved)).await
    }

    /// A receiver that sees every later transition; take it before reading the state
    /// it should wake on, so no change slips in between.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Waits until some approval changes after `rx` last looked, or `deadline`.
    pub async fn changed(rx: &mut watch::Receiver<u64>, deadline: tokio::time::Instant) {
        // Other replicas sharing the file do not wake us: look again at least each second.
        let wake = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
        let _ = tokio::time::timeout_at(wake, rx.changed()).await;
    }

    /// Sets the pending gauge from the store.
    pub async fn refresh_pending(&self) {
        match self.blocking(|s| s.pending()).await {
            Ok(n) => self
                .metrics
                .approvals_pending
                .set(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(e) => tracing::warn!(error = %e, "counting pending approvals"),
        }
    }

    /// Expires due approvals on a period until `stop` turns true.
    pub async fn run_sweeper(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "expiring approvals");
            }
        }
    }

    /// When a new approval on `route` expires.
    pub fn expiry_for(&self, route_expiry: Option<Duration>) -> Duration {
        route_expiry.unwrap_or(self.config.expire_after)
    }

    fn count(&self, approval: &Approval, to: State) {
        self.metrics
            .approval_transitions
            .with_label_values(&[approval.route.as_str(), to.as_str()])
            .inc();
    }

    /// One trace line per transition, under the parked request's trace id.
    fn trace(
        &self,
        approval: &Approval,
        from: Option<State>,
        to: State,
        actor: Option<&str>,
        executed: Option<Executed>,
    ) {
        let failure = approval.failure.as_ref().filter(|_| to.is_final());
        let executed = executed.unwrap_or_default();
        self.traces.emit(TraceRecord {
            route: Some(approval.route.clone()),
            mode: Some("enforce"),
            user: approval.user.clone(),
            tool: executed.tool,
            method: approval.request.method.clone(),
            path: approval.request.received_path.clone(),
            outcome: outcome(to),
            status: approval.response.as_ref().map_or(0, |r| r.status),
            decision: executed.decision,
            policy_revision: executed
                .policy_revision
                .or_else(|| Some(approval.policy_revision.clone())),
            upstream: executed.upstream,
            latency_ms: executed.latency_ms,
            call: executed.call,
            response: executed.response,
            approval: Some(ApprovalTrace {
                id: approval.id.clone(),
                from: from.map(State::as_str),
                to: to.as_str(),
                actor: actor.map(str::to_string),
                comment: if from == Some(State::Pending) {
                    approval.comment.clone()
                } else {
                    None
                },
                failure: failure.map(|f| f.code.clone()),
            }),
            ..TraceRecord::new(
                RecordKind::Approval,
                approval.trace_id.clone(),
                crate::trace::context::TraceContext::new_span_id(),
                rfc3339(self.now_ms()),
            )
        });
    }
}

/// The trace `outcome` of a transition into `to`.
fn outcome(to: State) -> &'static str {
    match to {
        State::Pending => "approval_pending",
        State::Approved => "approval_approved",
        State::Executing => "approval_executing",
        State::Succeeded => "approval_succeeded",
        State::Failed => "approval_failed",
        State::OutcomeUnknown => "approval_outcome_unknown",
        State::Denied => "approval_denied",
        State::Expired => "approval_expired",
    }
}

/// A new approval id: 128 random bits, hex. The id is also the agent's capability to
/// poll (together with its identity), so it must not be guessable.
pub fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| StoreError(format!("no randomness: {e}")))?;
    Ok(crate::hex::encode(&bytes))
}

/// Whether `id` has the shape of an approval id (checked before any store lookup).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The system clock in milliseconds (for callers without a clock of their own).
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
