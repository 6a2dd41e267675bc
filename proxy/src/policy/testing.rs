//! Running a bundle's own Rego tests: every `test_*` rule of every `*_test.rego` file,
//! evaluated with the bundle's policies and data, the `opa test` way. A test passes when
//! its rule is `true`; `false` or undefined fails it; an evaluation error is an error.
//!
//! Tests use `with input as ...`, so they run on the interpreter.

use super::bundle::Bundle;
use super::engine;
use anyhow::Result;
use regorus::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Any single test taking longer than this is an error, not a hang.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Error(String),
}

/// One test rule and how it went.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub file: String,
    /// The full rule path, `data.<package>.test_<name>`.
    pub rule: String,
    pub outcome: Outcome,
    pub duration: Duration,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// Runs every test of `bundle`. Errors only when the bundle itself cannot be loaded.
pub fn run(bundle: &Bundle) -> Result<Vec<TestResult>> {
    let mut engine = engine::load_engine(bundle, TEST_TIMEOUT)?;
    let mut tests = Vec::new();
    for file in &bundle.tests {
        let package = engine::add_policy(&mut engine, file)?;
        for name in test_rule_names(&file.source) {
            if engine
                .has_declared_rule_rooted_at(&file.name, name)
                .unwrap_or(false)
            {
                tests.push((file.name.clone(), format!("{package}.{name}")));
            }
        }
    }
    Ok(tests
        .into_iter()
        .map(|(file, rule)| {
            let started = Instant::now();
            let outcome = match engine.eval_rule(rule.clone()) {
                Ok(Value::Bool(true)) => Outcome::Pass,
                Ok(_) => Outcome::Fail,
                Err(e) => Outcome::Error(e.to_string()),
            };
            TestResult {
                file,
                rule,
                outcome,
                duration: started.elapsed(),
            }
        })
        .collect())
}

/// Candidate test rule names: identifiers starting with `test_` at the start of a line
/// (where rule heads are written). Each is confirmed against the parsed module.
fn test_rule_names(source: &str) -> BTreeSet<&str> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let end = line
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(line.len());
            let name = &line[..end];
            name.starts_with("test_").then_some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundle::RegoFile;

    fn bundle(test_source: &str) -> Bundle {
        Bundle {
            revision: "sha256:test".into(),
            policies: vec![RegoFile {
                name: "p.rego".into(),
                source: "package p\nallow if input.ok\n".into(),
            }],
            tests: vec![RegoFile {
                name: "p_test.rego".into(),
                source: test_source.into(),
            }],
            data: vec![],
        }
    }

    #[test]
    fn reports_each_test_rule_with_its_outcome() -> Result<()> {
        let source = "package p_test\nimport data.p\n\
                      test_allows if p.allow with input as {\"ok\": true}\n\
                      test_wrong if p.allow with input as {\"ok\": false}\n\
                      # test_commented_out is not a rule\n\
                      test_error if 1 / 0 == 1\n\
                      helper := 1\n";
        let results = run(&bundle(source))?;
        let outcomes: Vec<(String, Outcome)> = results
            .iter()
            .map(|r| (r.rule.clone(), r.outcome.clone()))
            .collect();
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
        assert_eq!(
            outcomes[0],
            ("data.p_test.test_allows".to_string(), Outcome::Pass)
        );
        assert_eq!(
            outcomes[2],
            ("data.p_test.test_wrong".to_string(), Outcome::Fail)
        );
        assert!(
            matches!(outcomes[1].1, Outcome::Error(_)),
            "{:?}",
            outcomes[1]
        );
        Ok(())
    }
}
