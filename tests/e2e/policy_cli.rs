//! `lastmile policy ...` and the test gate on hot reload: a bundle whose own Rego tests
//! fail never serves.

use crate::harness::{
    eventually, expect_status, policies, Behaviour, RouteSpec, Setup, Upstream, Workspace,
};
use anyhow::{ensure, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn lastmile(args: &[&str]) -> Result<Output> {
    Ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_lastmile-e2e"))
            .args(args)
            .output()?,
    )
}

#[test]
fn shipped_policy_tests_pass() -> Result<()> {
    let out = lastmile(&["policy", "test", &repo("policies").to_string_lossy()])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "policy test failed:\n{stdout}");
    ensure!(
        stdout.contains("PASS  data.lastmile_test.test_reminder_allowed"),
        "{stdout}"
    );
    ensure!(stdout.contains(" 0 failed"), "{stdout}");
    Ok(())
}

#[test]
fn a_failing_rego_test_makes_policy_test_exit_non_zero() -> Result<()> {
    let out = lastmile(&[
        "policy",
        "test",
        &repo("tests/fixtures/failing-bundle").to_string_lossy(),
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(!out.status.success(), "expected a failure exit:\n{stdout}");
    ensure!(
        stdout.contains("FAIL  data.lastmile_test.test_medium_amount_denied (lastmile_test.rego)"),
        "{stdout}"
    );
    ensure!(
        stdout.contains("PASS  data.lastmile_test.test_small_amount_allowed"),
        "{stdout}"
    );
    ensure!(stdout.contains("1 passed, 1 failed"), "{stdout}");
    Ok(())
}

#[test]
fn check_prints_the_revision_and_rejects_a_broken_bundle() -> Result<()> {
    let out = lastmile(&["policy", "check", &repo("policies/demo").to_string_lossy()])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("ok ") && stdout.contains("sha256:"),
        "{stdout}"
    );

    let broken = Workspace::with_policy(policies::BROKEN)?;
    let out = lastmile(&[
        "policy",
        "check",
        &broken.path("policies").to_string_lossy(),
    ])?;
    ensure!(!out.status.success(), "a broken bundle passed the check");
    Ok(())
}

#[test]
fn eval_prints_the_decision_and_the_outcome() -> Result<()> {
    let workspace = Workspace::new()?;
    let input = json!({"route": "crm", "request": {"method": "GET", "path": "/v1/invoices/42",
        "segments": ["v1", "invoices", "42"], "body": null}, "user": {"sub": "u", "scope": ["account:acme"]}});
    workspace.write("input.json", &input.to_string())?;
    let out = lastmile(&[
        "policy",
        "eval",
        &repo("policies/demo").to_string_lossy(),
        "--input",
        &workspace.path("input.json").to_string_lossy(),
    ])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(report["outcome"] == "deny (403 denied)", "{report}");
    ensure!(report["deny"][0]["code"] == "bad_id", "{report}");
    ensure!(
        report["rules"]["bad_id"][0] == "lastmile.rego:92",
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn a_bundle_whose_tests_fail_is_not_activated() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let workspace = Workspace::with_policy(policies::ALLOW_ALL)?;
    let proxy = workspace
        .start(&Setup::new(vec![RouteSpec::new(
            "crm",
            "/crm",
            upstream.url(),
        )]))
        .await?;
    let body = json!({"subject": "hi"});
    let ticket = || proxy.post_json("/crm/v1/tickets", &[], &body);
    expect_status(&ticket().await?, 201)?;

    // The new bundle compiles and would deny everything, but its own test fails.
    proxy.workspace().write(
        "policies/lastmile_test.rego",
        "package lastmile_test\n\ntest_always_fails if false\n",
    )?;
    proxy
        .workspace()
        .write("policies/lastmile.rego", &policies::deny_all("v2"))?;
    eventually(
        "a reload rejected for failing tests",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let metrics = proxy.metrics().await?;
            Ok(metrics
                .get(
                    "lastmile_policy_reloads_total",
                    &[("result", "tests_failed")],
                )
                .filter(|n| *n >= 1.0))
        },
    )
    .await?;
    expect_status(&ticket().await?, 201).context("the rejected bundle is serving")?;
    ensure!(
        proxy
            .stderr()
            .contains("data.lastmile_test.test_always_fails"),
        "the log does not name the failing test"
    );

    // Fixing the test activates the bundle.
    proxy.workspace().write(
        "policies/lastmile_test.rego",
        "package lastmile_test\n\ntest_ok if true\n",
    )?;
    eventually(
        "the fixed bundle to deny",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async { Ok((ticket().await?.status == 403).then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_changed_library_file_is_reloaded_with_the_bundle() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let workspace = Workspace::with_policy(
        "package lastmile\n\nimport data.lastmile.lib.shared\n\n\
         decision := {\"deny\": [{\"code\": shared.code, \"message\": \"from the library\"}]}\n",
    )?;
    workspace.write(
        "library/shared.rego",
        "package lastmile.lib.shared\n\ncode := \"v1\"\n",
    )?;
    let setup = Setup::new(vec![RouteSpec::new("crm", "/crm", upstream.url())]).with_library();
    let proxy = workspace.start(&setup).await?;
    let body = json!({"subject": "hi"});
    let code = || async {
        let reply = proxy.post_json("/crm/v1/tickets", &[], &body).await?;
        Ok::<_, anyhow::Error>(reply.json()?["error"]["reasons"][0]["code"].clone())
    };
    ensure!(code().await? == "v1");
    proxy.workspace().write(
        "library/shared.rego",
        "package lastmile.lib.shared\n\ncode := \"v2\"\n",
    )?;
    eventually(
        "the library change to take effect",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async { Ok((code().await? == "v2").then_some(())) },
    )
    .await?;
    upstream.nothing_received()?;
    Ok(())
}
