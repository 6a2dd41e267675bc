//! One way to ask the policy: evaluate the entry point on an input and read the result
//! as a [`Decision`], or say why there is none. The pipeline, approved execution, the
//! CLI and the benchmark all come through here, so they can never disagree on what a
//! policy's answer means.

use super::decision::{self, Decision};
use super::engine::PreparedPolicy;
use regorus::Value;

/// Why the policy gave no usable decision. Every kind refuses with `policy_error` (fail
/// closed); the kind is counted apart (`lastmile_policy_failures_total{kind}`) so an
/// operator can tell a slow bundle from a broken one. Messages are for traces and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFailure {
    /// The entry point is undefined for this input.
    #[error("the policy produced no decision (entry point undefined)")]
    Undefined,
    /// The decision document is not of the documented shape.
    #[error("{0}")]
    WrongShape(String),
    /// Evaluation failed (a builtin error, a conflict between rules, …).
    #[error("evaluation failed: {0}")]
    Error(String),
    /// Evaluation ran past `policies.eval_timeout_ms`.
    #[error("evaluation failed: {0}")]
    Timeout(String),
}

impl PolicyFailure {
    /// The metric label of this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyFailure::Undefined => "undefined",
            PolicyFailure::WrongShape(_) => "wrong_shape",
            PolicyFailure::Error(_) => "error",
            PolicyFailure::Timeout(_) => "timeout",
        }
    }

    /// Every kind, for documentation and for registering the metric's series.
    pub const KINDS: [&'static str; 4] = ["undefined", "wrong_shape", "error", "timeout"];

    /// Classifies an evaluation error: the engine's own time limit, or anything else.
    pub fn from_evaluation(error: &anyhow::Error) -> PolicyFailure {
        let timed_out = error.chain().any(|cause| {
            cause
                .downcast_ref::<regorus::LimitError>()
                .is_some_and(is_time_limit)
        });
        let message = format!("{error}");
        if timed_out {
            PolicyFailure::Timeout(message)
        } else {
            PolicyFailure::Error(message)
        }
    }
}

fn is_time_limit(limit: &regorus::LimitError) -> bool {
    matches!(limit, regorus::LimitError::TimeLimitExceeded { .. })
}

/// Evaluates `policy` on `input` and reads the decision.
pub fn decide(policy: &PreparedPolicy, input: Value) -> Result<Decision, PolicyFailure> {
    let value = policy
        .evaluate(input)
        .map_err(|e| PolicyFailure::from_evaluation(&e))?;
    interpret(&value)
}

/// Reads an evaluated decision document (lastmile's or another engine's).
pub fn interpret(value: &Value) -> Result<Decision, PolicyFailure> {
    if matches!(value, Value::Undefined) {
        return Err(PolicyFailure::Undefined);
    }
    decision::parse(value).map_err(|e| PolicyFailure::WrongShape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundle::{Bundle, RegoFile};
    use std::time::Duration;

    fn policy(rego: &str, timeout: Duration) -> anyhow::Result<PreparedPolicy> {
        let bundle = Bundle {
            revision: "sha256:test".into(),
            policies: vec![RegoFile {
                name: "p.rego".into(),
                source: rego.into(),
            }],
            tests: vec![],
            data: vec![],
        };
        PreparedPolicy::compile(&bundle, "data.lastmile.decision", timeout)
    }

    fn input(n: u64) -> Value {
        Value::from(serde_json::json!({"n": n, "request": {"method": "GET"}}))
    }

    #[test]
    fn each_failure_has_its_kind() -> anyhow::Result<()> {
        let undefined = policy(
            "package lastmile\ndecision := {\"deny\": []} if input.n == 0\n",
            Duration::from_secs(5),
        )?;
        assert_eq!(
            decide(&undefined, input(1)).err(),
            Some(PolicyFailure::Undefined)
        );
        assert!(decide(&undefined, input(0)).is_ok());

        let shape = policy(
            "package lastmile\ndecision := {\"deny\": 7}\n",
            Duration::from_secs(5),
        )?;
        let failure = decide(&shape, input(1)).err();
        assert_eq!(
            failure.as_ref().map(PolicyFailure::kind),
            Some("wrong_shape")
        );

        let broken = policy(
            "package lastmile\ndecision := {\"deny\": [x]} if { input.n > 0; x := 1 / (input.n - input.n) }\ndecision := {\"deny\": []} if input.n == 0\n",
            Duration::from_secs(5),
        )?;
        let failure = decide(&broken, input(1)).err();
        assert_eq!(failure.as_ref().map(PolicyFailure::kind), Some("error"));
        Ok(())
    }

    #[test]
    fn the_time_limit_is_told_apart() -> anyhow::Result<()> {
        // Neutral input (n absent) is cheap, so the bundle compiles; n = 3000 is slow.
        let slow = policy(
            "package lastmile\ndecision := {\"deny\": [r | some i in numbers.range(1, object.get(input, \"n\", 0)); some j in numbers.range(1, object.get(input, \"n\", 0)); r := {\"code\": \"x\", \"message\": sprintf(\"%d\", [i * j])}; false]}\n",
            Duration::from_millis(5),
        )?;
        let failure = decide(&slow, input(3000)).err();
        assert_eq!(
            failure.as_ref().map(PolicyFailure::kind),
            Some("timeout"),
            "{failure:?}"
        );
        Ok(())
    }
}
