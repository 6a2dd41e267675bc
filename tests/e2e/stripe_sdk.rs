//! The official Stripe Python SDK, pointed at lastmile as an agent would use it: a
//! form-encoded payment API whose amounts the policy must be able to limit.
//!
//! The interpreter is `LASTMILE_PYTHON`, else `.ci/tools/venv/bin/python` (where `.ci/run`
//! installs a pinned `stripe`). Without it the test skips with a note locally, and fails
//! when `CI` is set.

use super::form_bodies::{seen, start};
use crate::harness::RouteSpec;
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The interpreter with the Stripe SDK: `LASTMILE_PYTHON`, else the CI virtualenv.
/// `None` (with a note) when it is missing and `CI` is not set.
fn stripe_python() -> Result<Option<PathBuf>> {
    let python = std::env::var_os("LASTMILE_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/tools/venv/bin/python"),
        PathBuf::from,
    );
    let has_stripe = std::process::Command::new(&python)
        .args(["-c", "import stripe"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_stripe {
        return Ok(Some(python));
    }
    if std::env::var_os("CI").is_some() {
        bail!(
            "{} with the stripe package is required under CI (.ci/run installs it)",
            python.display()
        );
    }
    eprintln!("note: {} cannot import stripe; skipping the Stripe SDK test (run .ci/run, or set LASTMILE_PYTHON)", python.display());
    Ok(None)
}

/// Creates a refund with the official SDK against `base`; prints what happened as JSON.
const REFUND_SCRIPT: &str = r#"
import json, sys, stripe
client = stripe.StripeClient("sk_test_lastmile_e2e_4b1d", base_addresses={"api": sys.argv[1]}, max_network_retries=0)
try:
    client.v1.refunds.create(params={"charge": "ch_3MmlLrLkdIwHu7ix0snN0B15", "amount": int(sys.argv[2]), "metadata": {"order": "7"}})
    print(json.dumps({"ok": True}))
except stripe.StripeError as e:
    print(json.dumps({"ok": False, "status": e.http_status, "body": e.json_body}))
"#;

async fn refund(python: &PathBuf, base: &str, amount: u64) -> Result<Value> {
    let mut command = std::process::Command::new(python);
    command.args(["-c", REFUND_SCRIPT, base, &amount.to_string()]);
    let run = tokio::task::spawn_blocking(move || command.output());
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .context("the Stripe script did not finish in 60 s")???;
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "script output {stdout:?}, stderr {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn the_stripe_sdk_cannot_refund_past_the_policy_limit() -> Result<()> {
    let Some(python) = stripe_python()? else {
        return Ok(());
    };
    let (upstream, proxy) = start(|u| vec![RouteSpec::new("stripe", "/stripe", u)]).await?;
    let base = format!("http://{}/stripe", proxy.data);

    let refused = refund(&python, &base, 250_000).await?;
    ensure!(
        refused["ok"] == false && refused["status"] == 403,
        "{refused}"
    );
    ensure!(refused["body"]["error"]["code"] == "denied", "{refused}");
    ensure!(
        refused["body"]["error"]["reasons"][0]["code"] == "amount_over_limit",
        "{refused}"
    );
    upstream.nothing_received()?;

    let sent = refund(&python, &base, 5_000).await?;
    ensure!(sent["ok"] == true, "{sent}");
    let sent = upstream.only_request()?;
    ensure!(sent.path == "/v1/refunds", "{sent:?}");
    let fields: Vec<(String, String)> = form_urlencoded::parse(&sent.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for field in [("amount", "5000"), ("metadata[order]", "7")] {
        ensure!(
            fields.contains(&(field.0.into(), field.1.into())),
            "{fields:?}"
        );
    }
    ensure!(seen(&upstream, "amount-type")? == "string");
    let parsed: Value = serde_json::from_str(&seen(&upstream, "body")?)?;
    ensure!(
        parsed["amount"] == "5000" && parsed["metadata"]["order"] == "7",
        "{parsed}"
    );
    // The agent's key never reaches the upstream; the route's credential does.
    let authorization = sent.header("authorization").unwrap_or_default();
    ensure!(!authorization.contains("sk_test"), "{authorization}");
    Ok(())
}
