//! `lastmile policy ...`: the security team's tools, on the proxy's own engine code.

use super::PolicyCommand;
use crate::policy::bundle::Bundle;
use crate::policy::decide;
use crate::policy::decision::{Reason, Verdict};
use crate::policy::engine::PreparedPolicy;
use crate::policy::testing::{self, Outcome};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Evaluations from the command line get a generous limit: a person is waiting, not an
/// agent.
const CLI_EVAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one policy command; `Ok(false)` means it ran and found a problem (exit 1).
pub fn run(command: PolicyCommand) -> Result<bool> {
    match command {
        PolicyCommand::Check {
            dir,
            libraries,
            entrypoint,
        } => check(&dir, &libraries, &entrypoint),
        PolicyCommand::Test { path, libraries } => test(&path, &libraries),
        PolicyCommand::Eval {
            dir,
            input,
            libraries,
            entrypoint,
        } => eval(&dir, &input, &libraries, &entrypoint),
        PolicyCommand::Replay(args) => super::replay::run(&args),
    }
}

/// Reads and compiles a bundle as the proxy would serve it.
pub(super) fn load(
    dir: &Path,
    libraries: &[PathBuf],
    entrypoint: &str,
) -> Result<(Bundle, PreparedPolicy)> {
    let bundle = Bundle::read_with_libraries(dir, libraries)?;
    let policy = PreparedPolicy::compile(&bundle, entrypoint, CLI_EVAL_TIMEOUT)?;
    Ok((bundle, policy))
}

fn check(dir: &Path, libraries: &[PathBuf], entrypoint: &str) -> Result<bool> {
    let bundle = Bundle::read_with_libraries(dir, libraries)?;
    PreparedPolicy::compile(&bundle, entrypoint, CLI_EVAL_TIMEOUT)?;
    println!(
        "ok {} {} ({} policy files, {} test files, {} data files; entry point {entrypoint})",
        dir.display(),
        bundle.revision,
        bundle.policies.len(),
        bundle.tests.len(),
        bundle.data.len()
    );
    Ok(true)
}

fn test(path: &Path, libraries: &[PathBuf]) -> Result<bool> {
    let mut libraries = libraries.to_vec();
    let mut bundles = bundle_dirs(path)?;
    let shipped_library = path.join("lib");
    if bundles.len() > 1 && bundles.contains(&shipped_library) {
        // The library is tested on its own first, then loaded with every other bundle.
        bundles.retain(|b| *b != shipped_library);
        bundles.insert(0, shipped_library.clone());
        libraries.push(shipped_library.clone());
    }
    if bundles.is_empty() {
        bail!("no policy bundle under {}", path.display());
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for dir in bundles {
        let with: Vec<PathBuf> = libraries.iter().filter(|l| **l != dir).cloned().collect();
        let bundle = Bundle::read_with_libraries(&dir, &with)?;
        println!("{} ({})", dir.display(), bundle.revision);
        let results =
            testing::run(&bundle).with_context(|| format!("testing {}", dir.display()))?;
        if results.is_empty() {
            println!("  no tests");
        }
        for result in results {
            let ms = result.duration.as_secs_f64() * 1000.0;
            match &result.outcome {
                Outcome::Pass => println!("  PASS  {} ({}) {ms:.1} ms", result.rule, result.file),
                Outcome::Fail => println!("  FAIL  {} ({}) {ms:.1} ms", result.rule, result.file),
                Outcome::Error(e) => println!("  ERROR {} ({}): {e}", result.rule, result.file),
            }
            if result.passed() {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    println!("policy tests: {passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// A directory with `.rego` files of its own is one bundle; otherwise each
/// subdirectory holding any is a bundle (so `policies/` tests every bundle in it).
fn bundle_dirs(path: &Path) -> Result<Vec<PathBuf>> {
    let has_rego = |dir: &Path| -> Result<bool> {
        Ok(std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".rego")))
    };
    if has_rego(path)? {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        dirs.extend(bundle_dirs(&entry.path())?);
    }
    dirs.sort();
    Ok(dirs)
}

fn eval(dir: &Path, input: &Path, libraries: &[PathBuf], entrypoint: &str) -> Result<bool> {
    let (bundle, policy) = load(dir, libraries, entrypoint)?;
    let text = if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?
    };
    let input: regorus::Value =
        serde_json::from_str(&text).context("the input is not valid JSON")?;
    let value = policy.evaluate(input)?;
    let raw: serde_json::Value = serde_json::to_value(&value).unwrap_or(serde_json::Value::Null);
    let report = match decide::interpret(&value) {
        Ok(d) => {
            let outcome = match d.verdict() {
                Verdict::Deny => "deny (403 denied)",
                Verdict::Approval => "approval required",
                Verdict::Allow => "allow (forwarded)",
            };
            serde_json::json!({
                "revision": bundle.revision,
                "outcome": outcome,
                "deny": d.deny,
                "approval": d.approval,
                "rules": reason_sources(&bundle, d.deny.iter().chain(&d.approval)),
                "dedup_key": d.dedup.as_ref().and_then(|i| serde_json::to_value(&i.key).ok()),
                "decision": raw,
            })
        }
        Err(e) => serde_json::json!({
            "revision": bundle.revision,
            "outcome": "policy_error (403)",
            "error": e.to_string(),
            "kind": e.kind(),
            "decision": raw,
        }),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(true)
}

/// Where each reason code is written in the bundle's policies (`file:line`), so a
/// reader can find the rule behind a reason. regorus reports no provenance, so this
/// is a search for the code's string literal: a code built at run time is not found.
fn reason_sources<'a>(
    bundle: &Bundle,
    reasons: impl Iterator<Item = &'a Reason>,
) -> serde_json::Map<String, serde_json::Value> {
    reasons
        .map(|reason| {
            let literal = format!("\"{}\"", reason.code);
            let places: Vec<String> = bundle
                .policies
                .iter()
                .flat_map(|file| {
                    file.source
                        .lines()
                        .enumerate()
                        .filter(|(_, line)| {
                            line.contains(&literal) && !line.trim_start().starts_with('#')
                        })
                        .map(move |(n, _)| format!("{}:{}", file.name, n + 1))
                })
                .collect();
            (reason.code.clone(), serde_json::Value::from(places))
        })
        .collect()
}
