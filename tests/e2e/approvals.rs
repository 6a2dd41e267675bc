//! Human approval through the real binary: parking, the approver API, execution of the
//! approved request, the agent's poll and long poll, denial, expiry on a manual clock,
//! and the webhook.

use crate::harness::approvals::*;
use crate::harness::upstream::CREATED_BODY;
use crate::harness::{eventually, expect_status, Behaviour, Upstream};
use anyhow::{ensure, Context, Result};
use http::Method;
use lastmile::dedup::clock::ManualClock;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn an_over_limit_refund_is_parked_approved_and_executed_exactly_once() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;

    let reply = refund(&proxy, AGENT_USER, "INV-00000001", 5000).await?;
    expect_status(&reply, 202)?;
    ensure!(reply.header("lastmile-decision").as_deref() == Some("pending_approval"));
    let parked = reply.json()?;
    let id = parked["approval_id"]
        .as_str()
        .context("approval_id")?
        .to_string();
    ensure!(parked["status"] == "pending_approval", "{parked}");
    ensure!(
        parked["poll_url"] == format!("/_lastmile/approvals/{id}"),
        "{parked}"
    );
    ensure!(
        parked["reasons"][0]["code"] == "amount_over_limit",
        "{parked}"
    );
    ensure!(
        parked["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{parked}"
    );
    upstream
        .nothing_received()
        .context("nothing may reach the upstream yet")?;

    // The same intent while it is pending: the same approval, not a second one.
    let again = refund(&proxy, AGENT_USER, "INV-00000001", 5000).await?;
    expect_status(&again, 202)?;
    ensure!(again.json()?["approval_id"] == id.as_str());

    let list = proxy
        .admin_call(
            Method::GET,
            "/approvals?state=pending",
            Some(token("alice")?),
            None,
        )
        .await?;
    expect_status(&list, 200)?;
    let items = list.json()?["approvals"].clone();
    ensure!(items.as_array().map(Vec::len) == Some(1), "{items}");
    ensure!(
        items[0]["id"] == id.as_str() && items[0]["user"] == AGENT_USER,
        "{items}"
    );
    ensure!(items[0]["request"]["body"]["amount"] == 5000, "{items}");
    ensure!(items[0]["request"]["path"] == "/crm/v1/refunds", "{items}");
    ensure!(
        !list.text().contains("agent-secret") && !list.text().contains("eyJ"),
        "credentials or tokens leaked into the list: {}",
        list.text()
    );

    let pending = poll(&proxy, AGENT_USER, &id, "").await?;
    expect_status(&pending, 202)?;
    ensure!(pending.json()?["status"] == "pending_approval");

    let approved = decide(
        &proxy,
        "alice",
        &id,
        "approve",
        Some("refund agreed with finance"),
    )
    .await?;
    expect_status(&approved, 200)?;
    let approved = approved.json()?;
    ensure!(approved["state"] == "succeeded", "{approved}");
    ensure!(approved["upstream_status"] == 201 && approved["decided_by"] == "alice");

    let sent = upstream.only_request()?;
    ensure!(sent.path == "/v1/refunds" && sent.method == Method::POST);
    ensure!(
        sent.header("authorization").as_deref()
            == Some(format!("Bearer {}", crate::harness::UPSTREAM_TOKEN).as_str()),
        "the route's credential, not the agent's, goes upstream"
    );
    ensure!(sent.header("x-lastmile-user").is_none());
    ensure!(
        sent.header("x-approved-by").as_deref() == Some("alice"),
        "input.approval"
    );
    ensure!(sent.header("x-approval-id").as_deref() == Some(id.as_str()));
    let sent_body: Value = serde_json::from_slice(&sent.body)?;
    ensure!(sent_body["amount"] == 5000 && sent_body["invoice"] == "INV-00000001");

    let done = poll(&proxy, AGENT_USER, &id, "").await?;
    expect_status(&done, 201).context("the upstream's real status")?;
    ensure!(
        done.text() == CREATED_BODY,
        "the upstream's real body: {}",
        done.text()
    );
    ensure!(done.header("x-upstream").as_deref() == Some("e2e"));
    ensure!(done.header("lastmile-approval-state").as_deref() == Some("succeeded"));

    let twice = decide(&proxy, "bob", &id, "approve", None).await?;
    expect_status(&twice, 409)?;
    upstream.only_request()?;

    let shown = show(&proxy, &id).await?;
    let steps: Vec<(String, String)> = shown["history"]
        .as_array()
        .context("history")?
        .iter()
        .map(|e| {
            (
                e["to"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("pending", AGENT_USER),
        ("approved", "alice"),
        ("executing", "lastmile"),
        ("succeeded", "lastmile"),
    ];
    ensure!(
        steps
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .eq(expected.iter().copied()),
        "{steps:?}"
    );
    ensure!(shown["history"][1]["comment"] == "refund agreed with finance");

    let metrics = proxy.metrics().await?;
    for state in ["pending", "approved", "executing", "succeeded"] {
        ensure!(
            metrics.get(
                "lastmile_approval_transitions_total",
                &[("route", "crm"), ("state", state)]
            ) == Some(1.0),
            "transition counter for {state}"
        );
    }
    ensure!(metrics.get("lastmile_approvals_pending", &[]) == Some(0.0));
    ensure!(
        metrics.get(
            "lastmile_approval_decision_seconds_count",
            &[("route", "crm")]
        ) == Some(1.0)
    );

    // Each transition is in the trace under the parked request's trace id.
    let trace_id = parked["trace_id"].as_str().context("trace_id")?;
    let transitions = eventually(
        "all transitions traced",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let text = proxy.trace_text();
            async move {
                let text = text?;
                let records: Vec<Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter(|r| r["trace_id"] == trace_id && r["approval"].is_object())
                    .collect();
                Ok((records.len() >= 5).then_some(records))
            }
        },
    )
    .await?;
    let outcomes: Vec<&str> = transitions
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    for outcome in [
        "pending_approval",
        "approval_pending",
        "approval_approved",
        "approval_executing",
        "approval_succeeded",
    ] {
        ensure!(
            outcomes.contains(&outcome),
            "{outcome} missing from {outcomes:?}"
        );
    }
    ensure!(!proxy.trace_text()?.contains("agent-secret"));
    Ok(())
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_the_approval_is_executed() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Arc::new(start(&upstream).await?);
    let id = park(&proxy, "INV-00000002").await?;
    let waiting = {
        let (proxy, id) = (proxy.clone(), id.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            poll(&proxy, AGENT_USER, &id, "?wait=10s")
                .await
                .map(|r| (r, started.elapsed()))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        !waiting.is_finished(),
        "the long poll returned before any decision"
    );
    let approved = decide(&proxy, "bob", &id, "approve", None).await?;
    expect_status(&approved, 200)?;
    let (reply, elapsed) = waiting.await??;
    expect_status(&reply, 201)?;
    ensure!(reply.text() == CREATED_BODY, "{}", reply.text());
    ensure!(
        elapsed < Duration::from_secs(5),
        "the long poll took {elapsed:?}"
    );
    // A wait that ends without a decision answers with the state.
    let other = park(&proxy, "INV-00000003").await?;
    let reply = poll(&proxy, AGENT_USER, &other, "?wait=200ms").await?;
    expect_status(&reply, 202)?;
    let bad = poll(&proxy, AGENT_USER, &other, "?wait=soon").await?;
    expect_status(&bad, 400)?;
    Ok(())
}

#[tokio::test]
async fn a_denied_request_never_reaches_the_upstream() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let id = park(&proxy, "INV-00000004").await?;
    let denied = decide(
        &proxy,
        "alice",
        &id,
        "deny",
        Some("duplicate of ticket 4411"),
    )
    .await?;
    expect_status(&denied, 200)?;
    ensure!(denied.json()?["state"] == "denied");
    let reply = poll(&proxy, AGENT_USER, &id, "").await?;
    expect_status(&reply, 403)?;
    let body = reply.json()?;
    ensure!(
        body["status"] == "denied" && body["error"]["code"] == "approval_denied",
        "{body}"
    );
    ensure!(body["comment"] == "duplicate of ticket 4411" && body["decided_by"] == "alice");
    let late = decide(&proxy, "bob", &id, "approve", None).await?;
    expect_status(&late, 409)?;
    upstream.nothing_received()?;
    Ok(())
}

#[tokio::test]
async fn pending_approvals_expire_on_a_manual_clock() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let clock = ManualClock::new();
    let setup = setup(&upstream, |r| r.approval_expiry(3600));
    let proxy = workspace()?
        .start_in_process(&setup, Arc::new(clock.clone()))
        .await?;
    let id = park(&proxy, "INV-00000005").await?;
    clock.advance(Duration::from_secs(3599));
    expect_status(&poll(&proxy, AGENT_USER, &id, "").await?, 202)?;
    clock.advance(Duration::from_secs(1));
    let reply = poll(&proxy, AGENT_USER, &id, "").await?;
    expect_status(&reply, 410)?;
    ensure!(reply.json()?["error"]["code"] == "approval_expired");
    let late = decide(&proxy, "alice", &id, "approve", None).await?;
    expect_status(&late, 409)?;
    // The sweeper expires approvals nobody looks at, too.
    let unseen = park(&proxy, "INV-00000006").await?;
    clock.advance(Duration::from_secs(7200));
    eventually(
        "the sweeper to expire it",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let list = proxy
                .admin_call(
                    Method::GET,
                    "/approvals?state=expired",
                    Some(token("alice")?),
                    None,
                )
                .await?;
            Ok(list.text().contains(&unseen).then_some(()))
        },
    )
    .await?;
    let metrics = proxy.metrics().await?;
    ensure!(
        metrics.get(
            "lastmile_approval_transitions_total",
            &[("route", "crm"), ("state", "expired")]
        ) == Some(2.0)
    );
    ensure!(metrics.get("lastmile_approvals_pending", &[]) == Some(0.0));
    upstream.nothing_received()?;
    Ok(())
}

#[tokio::test]
async fn a_webhook_announces_new_approvals_without_delaying_the_agent() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let hook = Upstream::start(Behaviour::Reply {
        status: 204,
        body: "",
    })
    .await?;
    let proxy = workspace()?
        .start(&base(&upstream, |r| r).approvals(&format!(
            "public_url: \"http://approvals.example\", webhook: {{url: \"{}/hook\", timeout_ms: 500}}",
            hook.url()
        )))
        .await?;
    let id = park(&proxy, "INV-00000014").await?;
    let received = eventually(
        "the webhook call",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let calls = hook.received();
            async move { Ok((!calls.is_empty()).then_some(calls)) }
        },
    )
    .await?;
    let payload: Value = serde_json::from_slice(&received[0].body)?;
    ensure!(
        payload["approval_id"] == id.as_str() && payload["event"] == "approval_pending",
        "{payload}"
    );
    ensure!(
        payload["links"]["page"] == "http://approvals.example/ui/approvals",
        "{payload}"
    );
    ensure!(payload["summary"]["body"]["amount"] == 5000, "{payload}");

    // A webhook that never answers does not hold the agent's 202 back.
    let slow = Upstream::start(Behaviour::Sleep(Duration::from_secs(30))).await?;
    let proxy = workspace()?
        .start(&base(&upstream, |r| r).approvals(&format!(
            "webhook: {{url: \"{}/hook\", timeout_ms: 10000}}",
            slow.url()
        )))
        .await?;
    let started = std::time::Instant::now();
    park(&proxy, "INV-00000015").await?;
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "the agent waited {:?}",
        started.elapsed()
    );
    Ok(())
}
