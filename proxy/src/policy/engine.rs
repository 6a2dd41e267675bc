//! Compiling a bundle into a prepared regorus engine, and evaluating it per request.
//!
//! A bundle is compiled and warmed once, off the request path. Each worker thread then
//! keeps its own clone of the warmed engine (a cheap copy of reference-counted parts)
//! and reuses it with `&mut` for every request, so evaluation never recompiles, never
//! re-prepares, and never contends on a shared engine.
//!
//! Evaluation uses regorus's interpreter, not its bytecode VM (RVM): the RVM is about
//! twice as fast on the shipped policies, but in regorus 0.14.1 it evaluates a `not`
//! after an assignment from a missing key as true where Rego (and the interpreter)
//! leave the rule undefined. Under double negation that would let a request through
//! that the policy denies, so the VM is not used until that is fixed upstream.

use super::bundle::{Bundle, RegoFile};
use anyhow::{anyhow, Context, Result};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Distinguishes compiled policies process-wide, so a worker's cached engine is
/// replaced as soon as a newer policy is loaded.
static GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static WORKER_ENGINE: RefCell<Option<(u64, Engine)>> = const { RefCell::new(None) };
}

/// A compiled, validated and warmed policy bundle, ready to evaluate.
#[derive(Debug)]
pub struct PreparedPolicy {
    engine: Engine,
    entrypoint: String,
    revision: String,
    generation: u64,
}

impl PreparedPolicy {
    /// Compiles every policy and data file of `bundle`, sets the evaluation time limit,
    /// and proves the bundle usable before it may serve: the entry point must exist and
    /// evaluate without error on a neutral request, and no rule may call a function
    /// that does not exist (regorus only reports those when they are evaluated).
    pub fn compile(
        bundle: &Bundle,
        entrypoint: &str,
        eval_timeout: Duration,
    ) -> Result<PreparedPolicy> {
        let mut engine = load_engine(bundle, eval_timeout)?;
        check_functions_exist(&engine)?;
        engine.set_input(neutral_input());
        engine
            .eval_rule(entrypoint.to_string())
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| {
                format!("evaluating the entry point {entrypoint} on a neutral request")
            })?;
        Ok(PreparedPolicy {
            engine,
            entrypoint: entrypoint.to_string(),
            revision: bundle.revision.clone(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The bundle's content revision (`sha256:…`).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Evaluates the entry point for one input on this thread's engine. Runs
    /// synchronously: evaluations are bounded by the execution time limit.
    pub fn evaluate(&self, input: Value) -> Result<Value> {
        WORKER_ENGINE.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return self.evaluate_on(&mut self.engine.clone(), input);
            };
            let engine = match &mut *slot {
                Some((generation, engine)) if *generation == self.generation => engine,
                other => &mut other.insert((self.generation, self.engine.clone())).1,
            };
            let result = self.evaluate_on(engine, input);
            if result.is_err() {
                // Start the next evaluation from the pristine warmed engine rather than
                // trusting state left behind by an aborted one.
                *slot = None;
            }
            result
        })
    }

    fn evaluate_on(&self, engine: &mut Engine, input: Value) -> Result<Value> {
        engine.set_input(input);
        engine.eval_rule(self.entrypoint.clone())
    }
}

/// A Rego v1 engine holding every policy and data file of `bundle` (not its tests),
/// with `timeout` as the evaluation time limit.
pub(super) fn load_engine(bundle: &Bundle, timeout: Duration) -> Result<Engine> {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: timeout,
        check_interval: NonZeroU32::MIN.saturating_add(63),
    });
    for file in &bundle.policies {
        add_policy(&mut engine, file)?;
    }
    for file in &bundle.data {
        engine
            .add_data(file.document.clone())
            .with_context(|| format!("loading data file {}", file.name))?;
    }
    Ok(engine)
}

/// Adds one Rego file; returns its package path (`data.<package>`).
pub(super) fn add_policy(engine: &mut Engine, file: &RegoFile) -> Result<String> {
    engine
        .add_policy(file.name.clone(), file.source.clone())
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("compiling {}", file.name))
}

/// Evaluates every rule once with lenient builtins, which surfaces calls to functions
/// regorus does not have. Runs on a clone so the serving engine keeps strict builtins.
fn check_functions_exist(engine: &Engine) -> Result<()> {
    let mut probe = engine.clone();
    probe.set_strict_builtin_errors(false);
    probe.set_input(neutral_input());
    probe
        .eval_modules(false)
        .map(|_| ())
        .map_err(|e| anyhow!("{e}"))
        .context("evaluating every rule once")
}

/// The input used to prove a bundle at load: a bodiless `GET /` with no user.
fn neutral_input() -> Value {
    let mut request = BTreeMap::new();
    request.insert(Value::from("method"), Value::from("GET"));
    request.insert(Value::from("path"), Value::from("/"));
    request.insert(Value::from("segments"), Value::new_array());
    request.insert(Value::from("query"), Value::new_object());
    request.insert(Value::from("headers"), Value::new_object());
    request.insert(Value::from("body"), Value::Null);
    let mut input = BTreeMap::new();
    input.insert(Value::from("version"), Value::from(super::INPUT_VERSION));
    input.insert(Value::from("route"), Value::from(""));
    input.insert(Value::from("request"), Value::from(request));
    input.insert(Value::from("user"), Value::Null);
    input.insert(Value::from("approval"), Value::Null);
    input.insert(Value::from("now_ns"), Value::from(0u64));
    Value::from(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundle::{Bundle, RegoFile};

    fn bundle(source: &str) -> Bundle {
        Bundle {
            revision: "sha256:test".into(),
            policies: vec![RegoFile {
                name: "p.rego".into(),
                source: source.into(),
            }],
            tests: vec![],
            data: vec![],
        }
    }

    const ENTRY: &str = "data.lastmile.decision";
    const TIMEOUT: Duration = Duration::from_millis(200);

    #[test]
    fn evaluates_the_entrypoint_against_the_input() -> Result<()> {
        let policy = PreparedPolicy::compile(
            &bundle("package lastmile\ndecision := {\"deny\": [input.route]}\n"),
            ENTRY,
            TIMEOUT,
        )?;
        let mut input = BTreeMap::new();
        input.insert(Value::from("route"), Value::from("crm"));
        let out = policy.evaluate(Value::from(input))?;
        assert_eq!(out["deny"][0], Value::from("crm"));
        Ok(())
    }

    #[test]
    fn rejects_syntax_errors_missing_entrypoints_and_unknown_functions() {
        assert!(PreparedPolicy::compile(
            &bundle("package lastmile\ndecision := {"),
            ENTRY,
            TIMEOUT
        )
        .is_err());
        assert!(
            PreparedPolicy::compile(&bundle("package other\nx := 1\n"), ENTRY, TIMEOUT).is_err()
        );
        let unknown = "package lastmile\ndecision := {}\nx if io.jwt.decode(input.t)\n";
        assert!(PreparedPolicy::compile(&bundle(unknown), ENTRY, TIMEOUT).is_err());
    }

    #[test]
    fn a_missing_key_leaves_a_negated_rule_undefined() -> Result<()> {
        // Rego semantics the serving evaluator must keep (regorus's RVM breaks this one):
        // the assignment from a missing key stops the rule body, so nothing is denied.
        let source = "package lastmile\nids := {\"q\"}\ndecision := {\"deny\": deny}\n\
                      deny contains \"x\" if { a := data.acct[input.k]; not a in ids }\n";
        let policy = PreparedPolicy::compile(&bundle(source), ENTRY, TIMEOUT)?;
        let mut input = BTreeMap::new();
        input.insert(Value::from("k"), Value::from("missing"));
        let out = policy.evaluate(Value::from(input))?;
        assert_eq!(out["deny"], Value::new_set());
        Ok(())
    }

    #[test]
    fn a_runaway_evaluation_is_stopped_by_the_time_limit() -> Result<()> {
        let slow = "package lastmile\ndecision := {\"deny\": [x | some i in numbers.range(1, input.n); some j in numbers.range(1, input.n); x := i * j]}\n";
        let policy = PreparedPolicy::compile(&bundle(slow), ENTRY, Duration::from_millis(20))?;
        let mut input = BTreeMap::new();
        input.insert(Value::from("n"), Value::from(5_000u64));
        assert!(policy.evaluate(Value::from(input)).is_err());
        Ok(())
    }
}
