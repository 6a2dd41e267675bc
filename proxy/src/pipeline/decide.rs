//! The decide phase: the live policy on the request's input, for a live request and an
//! approved execution alike.

use super::inbound::Inbound;
use super::{Proxy, Route};
use crate::policy::decide::{self, PolicyFailure};
use crate::policy::decision::Decision;
use regorus::Value;
use std::time::{Duration, Instant};

/// The policy's answer, and which policy gave it.
pub(super) struct Decided {
    pub result: Result<Decision, PolicyFailure>,
    /// The revision of the bundle that was asked.
    pub revision: String,
    /// Input building plus evaluation.
    pub elapsed: Duration,
    /// The input document the policy judged.
    pub input: Value,
}

impl Proxy {
    /// Decide: builds the input (`approval` is `null` for a live request) and asks the
    /// current policy. It refuses nothing itself: a failure is enforce's to refuse (or,
    /// on a dry-run route, to record). Timed per route; failures counted by kind.
    pub(super) fn decide(&self, route: &Route, inbound: &Inbound, approval: Value) -> Decided {
        let policy = self.policy.current();
        let started = Instant::now();
        let input = inbound.input(route, self.identity.as_ref(), approval);
        let result = decide::decide(&policy, input.clone());
        let elapsed = started.elapsed();
        route.metrics.policy_duration.observe(elapsed.as_secs_f64());
        if let Err(failure) = &result {
            self.metrics
                .policy_failures
                .with_label_values(&[route.config.name.as_str(), failure.kind()])
                .inc();
        }
        Decided {
            result,
            revision: policy.revision().to_string(),
            elapsed,
            input,
        }
    }
}
