//! `lastmile demo`, the README's first command, as a newcomer runs it: the banner's
//! tokens and curl commands work against the sample CRM. The demo uses fixed ports
//! (15001, 15002, 15080), so this is the only test that starts it.

use crate::harness::expect_status;
use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the banner up to the trace lines and returns alice's, bob's and the approver's
/// tokens.
fn start() -> Result<(Demo, String, String, String)> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_lastmile-e2e"))
            .arg("demo")
            .current_dir(&repo)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = demo.0.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut alice, mut bob, mut approver) = (None, None, None);
    let token = |line: &str| line.split('\'').nth(1).map(str::to_string);
    for line in lines.by_ref() {
        let line = line?;
        if line.contains("export ALICE=") {
            alice = token(&line);
        } else if line.contains("export BOB=") {
            bob = token(&line);
        } else if line.contains("export APPROVER=") {
            approver = token(&line);
        } else if line.starts_with("Decision trace lines follow") {
            break;
        }
    }
    // Keep draining stdout (the decision trace) so the demo never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    match (alice, bob, approver) {
        (Some(alice), Some(bob), Some(approver)) => Ok((demo, alice, bob, approver)),
        _ => bail!("the demo banner did not print all three tokens"),
    }
}

#[tokio::test]
async fn the_demo_runs_and_its_banner_commands_work() -> Result<()> {
    let (_demo, alice, bob, approver) = start()?;
    let client = crate::harness::client::http_client();
    let send = |method: http::Method, path: &str, token: &str, body: Option<serde_json::Value>| {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:15001{path}"))
            .header("x-lastmile-user", token);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        request.body(http_body_util::Full::new(bytes::Bytes::from(body)))
    };
    // The proxy is ready once the banner is out, but allow it a moment on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    let allowed = loop {
        let request = send(
            http::Method::POST,
            "/crm/v1/invoices/INV-00038122/reminders",
            &alice,
            Some(json!({"channel": "email", "recipient_role": "billing"})),
        )?;
        match crate::harness::client::send(&client, request).await {
            Ok(reply) => break reply,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e),
        }
    };
    expect_status(&allowed, 201).context("allowed reminder")?;
    anyhow::ensure!(allowed.json()?["status"] == "queued");

    let denied = crate::harness::client::send(
        &client,
        send(
            http::Method::POST,
            "/crm/v1/invoices/INV-00038122/reminders",
            &alice,
            Some(json!({"channel": "email", "recipient_role": "billing", "email": "cfo@acme.example"})),
        )?,
    )
    .await?;
    let body = crate::harness::assert_refusal(&denied, 403, "denied")?;
    let codes: Vec<&str> = body["error"]["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["code"].as_str()).collect())
        .unwrap_or_default();
    anyhow::ensure!(
        codes.contains(&"field_not_allowed") && codes.contains(&"raw_recipient"),
        "{codes:?}"
    );

    let other = crate::harness::client::send(
        &client,
        send(
            http::Method::GET,
            "/crm/v1/invoices/INV-00038122",
            &bob,
            None,
        )?,
    )
    .await?;
    let body = crate::harness::assert_refusal(&other, 403, "denied")?;
    anyhow::ensure!(
        body["error"]["reasons"][0]["code"] == "out_of_scope",
        "{body}"
    );

    let search = crate::harness::client::send(
        &client,
        send(http::Method::GET, "/crm/v1/invoices", &alice, None)?,
    )
    .await?;
    expect_status(&search, 200).context("search")?;
    let invoices = search.json()?["invoices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(
        !invoices.is_empty() && invoices.iter().all(|i| i["account"] == "acme"),
        "{invoices:?}"
    );

    // The banner's approval flow: park a large refund, approve it, fetch the result.
    let parked = crate::harness::client::send(
        &client,
        send(
            http::Method::POST,
            "/crm/v1/invoices/INV-00038122/refunds",
            &alice,
            Some(json!({"amount": 1200, "reason": "Duplicate charge"})),
        )?,
    )
    .await?;
    expect_status(&parked, 202).context("refund")?;
    let id = parked.json()?["approval_id"]
        .as_str()
        .context("approval_id")?
        .to_string();
    let approve = http::Request::post(format!("http://127.0.0.1:15002/approvals/{id}/approve"))
        .header("authorization", format!("Bearer {approver}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"comment": "checked"}).to_string(),
        )))?;
    let approved = crate::harness::client::send(&client, approve).await?;
    expect_status(&approved, 200)?;
    ensure!(
        approved.json()?["state"] == "succeeded",
        "approve: {}",
        approved.text()
    );
    let result = crate::harness::client::send(
        &client,
        send(
            http::Method::GET,
            &format!("/_lastmile/approvals/{id}"),
            &alice,
            None,
        )?,
    )
    .await?;
    expect_status(&result, 201)?;
    ensure!(
        result.json()?["amount"] == 1200,
        "the CRM's answer: {}",
        result.text()
    );
    let page = crate::harness::client::send(
        &client,
        http::Request::get("http://127.0.0.1:15002/ui/approvals")
            .body(http_body_util::Full::new(bytes::Bytes::new()))?,
    )
    .await?;
    expect_status(&page, 200).context("the approvals page")?;
    Ok(())
}
