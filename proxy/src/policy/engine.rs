//! Compiling a bundle into a prepared evaluator, and evaluating it per request.
//!
//! A bundle is compiled once, off the request path, to regorus bytecode (RVM), which
//! evaluates the shipped policies several times faster than the tree-walking
//! interpreter. Each worker thread keeps its own VM loaded with the shared program and
//! reuses it with `&mut` for every request, so evaluation never recompiles and never
//! contends on shared state. A bundle the RVM compiler cannot handle, or on which the
//! two disagree at load, is served by a warmed interpreter engine instead.

use super::bundle::Bundle;
use anyhow::{anyhow, Context, Result};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Distinguishes compiled policies process-wide, so a worker's cached engine is
/// replaced as soon as a newer policy is loaded.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The RVM's own instruction cap (25,000 by default) would refuse legitimate policies
/// that walk larger data; the wall-clock limit is what bounds a runaway evaluation.
const MAX_INSTRUCTIONS: usize = 50_000_000;

thread_local! {
    static WORKER: RefCell<Option<(u64, Evaluator)>> = const { RefCell::new(None) };
}

/// One thread's evaluator for one compiled policy.
enum Evaluator {
    Vm(Box<RegoVM>),
    Interpreter(Box<Engine>),
}

/// A compiled, validated and warmed policy bundle, ready to evaluate.
pub struct PreparedPolicy {
    engine: Engine,
    program: Option<Arc<Program>>,
    timer: ExecutionTimerConfig,
    entrypoint: String,
    revision: String,
    generation: u64,
}

impl std::fmt::Debug for PreparedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPolicy")
            .field("revision", &self.revision)
            .field("evaluator", &self.evaluator_name())
            .finish()
    }
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
        let mut engine = Engine::new();
        engine.set_rego_v0(false);
        for file in &bundle.policies {
            engine
                .add_policy(file.name.clone(), file.source.clone())
                .map_err(|e| anyhow!("{e}"))
                .with_context(|| format!("compiling {}", file.name))?;
        }
        for file in &bundle.data {
            engine
                .add_data(file.document.clone())
                .with_context(|| format!("loading data file {}", file.name))?;
        }
        let timer = ExecutionTimerConfig {
            limit: eval_timeout,
            check_interval: NonZeroU32::MIN.saturating_add(63),
        };
        engine.set_execution_timer_config(timer);
        check_functions_exist(&engine)?;
        engine.set_input(neutral_input());
        let expected = engine
            .eval_rule(entrypoint.to_string())
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| {
                format!("evaluating the entry point {entrypoint} on a neutral request")
            })?;
        let mut policy = PreparedPolicy {
            engine,
            program: None,
            timer,
            entrypoint: entrypoint.to_string(),
            revision: bundle.revision.clone(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        };
        policy.program = policy.compile_program(&expected);
        Ok(policy)
    }

    /// Compiles the bundle to RVM bytecode, keeping it only if it gives the
    /// interpreter's answer on the neutral request.
    fn compile_program(&mut self, expected: &Value) -> Option<Arc<Program>> {
        let entry: regorus::Rc<str> = self.entrypoint.as_str().into();
        let compiled = self
            .engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| anyhow!("{e}"));
        let program = compiled.and_then(|c| {
            Compiler::compile_from_policy(&c, &[self.entrypoint.as_str()])
                .map_err(|e| anyhow!("{e}"))
        });
        let program = match program {
            Ok(program) => program,
            Err(e) => {
                tracing::info!(error = %e, revision = %self.revision, "bytecode compilation unavailable; using the interpreter");
                return None;
            }
        };
        let agrees = self
            .new_vm(&program)
            .and_then(|mut vm| {
                vm.set_input(neutral_input());
                vm.execute().map_err(|e| anyhow!("{e}"))
            })
            .is_ok_and(|got| &got == expected);
        if !agrees {
            tracing::warn!(revision = %self.revision, "bytecode and interpreter disagree on this bundle; using the interpreter");
            return None;
        }
        Some(program)
    }

    fn new_vm(&self, program: &Arc<Program>) -> Result<RegoVM> {
        let mut vm = RegoVM::new();
        vm.load_program(program.clone());
        vm.set_data(self.engine.get_data())
            .map_err(|e| anyhow!("{e}"))?;
        vm.set_strict_builtin_errors(true);
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm.set_execution_timer_config(Some(self.timer));
        Ok(vm)
    }

    fn new_evaluator(&self) -> Result<Evaluator> {
        Ok(match &self.program {
            Some(program) => Evaluator::Vm(Box::new(self.new_vm(program)?)),
            None => Evaluator::Interpreter(Box::new(self.engine.clone())),
        })
    }

    /// `rvm` or `interpreter`: which evaluator serves this bundle.
    pub fn evaluator_name(&self) -> &'static str {
        if self.program.is_some() {
            "rvm"
        } else {
            "interpreter"
        }
    }

    /// The bundle's content revision (`sha256:…`).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Evaluates the entry point for one input on this thread's engine. Runs
    /// synchronously: evaluations are bounded by the execution time limit.
    pub fn evaluate(&self, input: Value) -> Result<Value> {
        WORKER.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return self.evaluate_on(&mut self.new_evaluator()?, input);
            };
            let evaluator = match &mut *slot {
                Some((generation, evaluator)) if *generation == self.generation => evaluator,
                other => &mut other.insert((self.generation, self.new_evaluator()?)).1,
            };
            let result = self.evaluate_on(evaluator, input);
            if result.is_err() {
                // Start the next evaluation from a fresh evaluator rather than trusting
                // state left behind by an aborted one.
                *slot = None;
            }
            result
        })
    }

    fn evaluate_on(&self, evaluator: &mut Evaluator, input: Value) -> Result<Value> {
        match evaluator {
            Evaluator::Vm(vm) => {
                vm.set_input(input);
                vm.execute().map_err(|e| anyhow!("{e}"))
            }
            Evaluator::Interpreter(engine) => {
                engine.set_input(input);
                engine.eval_rule(self.entrypoint.clone())
            }
        }
    }
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
    input.insert(
        Value::from("version"),
        Value::from(crate::pipeline::input::INPUT_VERSION),
    );
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
    fn the_shipped_demo_policy_runs_on_bytecode() -> Result<()> {
        let bundle = Bundle::read(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/demo"
        )))?;
        let policy = PreparedPolicy::compile(&bundle, ENTRY, TIMEOUT)?;
        assert_eq!(policy.evaluator_name(), "rvm");
        Ok(())
    }

    #[test]
    fn a_runaway_evaluation_is_stopped_by_the_time_limit() -> Result<()> {
        let slow = "package lastmile\ndecision := {\"deny\": [x | some i in numbers.range(1, input.n); some j in numbers.range(1, input.n); x := i * j]}\n";
        let policy = PreparedPolicy::compile(&bundle(slow), ENTRY, Duration::from_millis(20))?;
        assert_eq!(policy.evaluator_name(), "rvm");
        let mut input = BTreeMap::new();
        input.insert(Value::from("n"), Value::from(5_000u64));
        assert!(policy.evaluate(Value::from(input)).is_err());
        Ok(())
    }
}
