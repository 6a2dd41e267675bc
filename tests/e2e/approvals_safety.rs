//! What approvals must never do, through the real binary: execute twice (racing
//! decisions, restarts), send what the policy now denies, or let anyone but another
//! authenticated approver decide, or anyone but the acting user see the result.

use crate::harness::approvals::*;
use crate::harness::upstream::CREATED_BODY;
use crate::harness::{assert_refusal, eventually, expect_status, jwt, Behaviour, Upstream};
use anyhow::{bail, ensure, Context, Result};
use http::Method;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn racing_decisions_have_exactly_one_outcome_and_at_most_one_upstream_call() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Arc::new(start(&upstream).await?);
    for round in 0..4 {
        let id = park(&proxy, &format!("INV-1000000{round}")).await?;
        // Rounds alternate: two approvers approving, and an approve racing a deny.
        let second = if round % 2 == 0 { "approve" } else { "deny" };
        let (a, b) = tokio::join!(
            decide(&proxy, "alice", &id, "approve", None),
            decide(&proxy, "bob", &id, second, None)
        );
        let (a, b) = (a?, b?);
        let statuses = [a.status, b.status];
        ensure!(
            statuses.contains(&200) && statuses.contains(&409),
            "round {round}: {statuses:?} {} {}",
            a.text(),
            b.text()
        );
        let shown = show(&proxy, &id).await?;
        let state = shown["state"].as_str().unwrap_or("");
        let sent = upstream
            .received()
            .iter()
            .filter(|r| r.header("x-approval-id").as_deref() == Some(id.as_str()))
            .count();
        match state {
            "succeeded" => ensure!(sent == 1, "round {round}: {sent} calls"),
            "denied" => ensure!(sent == 0, "round {round}: {sent} calls"),
            other => bail!("round {round}: unexpected state {other}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_policy_that_now_denies_fails_the_approval_and_sends_nothing() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let id = park(&proxy, "INV-00000009").await?;
    let before = proxy.admin_get("/readyz").await?.json()?["policy_revision"].clone();
    // The invoice is paid meanwhile.
    proxy.workspace().write(
        "policies/data.json",
        r#"{"billing": {"paid": ["INV-00000009"]}}"#,
    )?;
    eventually(
        "the new bundle to load",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let now = proxy.admin_get("/readyz").await?.json()?["policy_revision"].clone();
            Ok((now != before).then_some(()))
        },
    )
    .await?;
    let approved = decide(&proxy, "alice", &id, "approve", None).await?;
    expect_status(&approved, 200)?;
    let approved = approved.json()?;
    ensure!(approved["state"] == "failed", "{approved}");
    ensure!(approved["failure"]["code"] == "denied", "{approved}");
    ensure!(
        approved["failure"]["reasons"][0]["code"] == "invoice_paid",
        "{approved}"
    );
    upstream.nothing_received().context("nothing may be sent")?;
    let reply = poll(&proxy, AGENT_USER, &id, "").await?;
    expect_status(&reply, 403)?;
    ensure!(reply.json()?["error"]["reasons"][0]["code"] == "invoice_paid");
    Ok(())
}

#[tokio::test]
async fn a_restart_keeps_pending_approvals_and_never_resends_an_interrupted_one() -> Result<()> {
    // The upstream holds the executing request until the proxy is killed.
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_secs(60))).await?;
    let setup = setup(&upstream, |r| r.timeout_ms(120_000));
    let proxy = Arc::new(workspace()?.start(&setup).await?);
    let executing = park(&proxy, "INV-00000011").await?;
    let pending = park(&proxy, "INV-00000012").await?;
    let approving = {
        let (proxy, id) = (proxy.clone(), executing.clone());
        tokio::spawn(async move { decide(&proxy, "alice", &id, "approve", None).await })
    };
    eventually(
        "the approval to be executing",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { Ok((show(&proxy, &executing).await?["state"] == "executing").then_some(())) },
    )
    .await?;
    eventually(
        "the upstream to receive it",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { Ok((upstream.received().len() == 1).then_some(())) },
    )
    .await?;
    approving.abort();
    let _ = approving.await;
    let proxy = Arc::try_unwrap(proxy).map_err(|_| anyhow::anyhow!("proxy still shared"))?;
    let workspace = proxy.kill();
    let proxy = workspace.start(&setup).await?;

    let interrupted = show(&proxy, &executing).await?;
    ensure!(interrupted["state"] == "outcome_unknown", "{interrupted}");
    ensure!(
        interrupted["failure"]["code"] == "interrupted",
        "{interrupted}"
    );
    ensure!(show(&proxy, &pending).await?["state"] == "pending");
    let reply = poll(&proxy, AGENT_USER, &executing, "").await?;
    expect_status(&reply, 504)?;
    ensure!(reply.json()?["error"]["outcome"] == "unknown");
    tokio::time::sleep(Duration::from_millis(300)).await;
    upstream.only_request().context("never re-sent")?;
    Ok(())
}

#[tokio::test]
async fn an_approval_approved_before_a_stop_but_never_started_runs_after_the_restart() -> Result<()>
{
    use lastmile::approval::sqlite::SqliteStore;
    use lastmile::approval::store::{ApprovalStore, State, Transition, Transitioned};
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = setup(&upstream, |r| r);
    let proxy = workspace()?.start(&setup).await?;
    let id = park(&proxy, "INV-00000021").await?;
    let workspace = proxy.kill();
    // As if the process stopped right after the approval was recorded: nothing was sent.
    {
        let store = SqliteStore::open(&workspace.path("state/approvals.db"))?;
        let approve = Transition {
            from: State::Pending,
            to: State::Approved,
            at_ms: lastmile::approval::system_now_ms(),
            actor: "alice".into(),
            comment: None,
            response: None,
            failure: None,
        };
        ensure!(matches!(
            store.transition(&id, &approve)?,
            Transitioned::Done(_)
        ));
    }
    let proxy = workspace.start(&setup).await?;
    eventually(
        "the resumed execution",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { Ok((show(&proxy, &id).await?["state"] == "succeeded").then_some(())) },
    )
    .await?;
    upstream.only_request()?;
    ensure!(upstream.received()[0].header("x-approved-by").as_deref() == Some("alice"));
    Ok(())
}

#[tokio::test]
async fn approvers_must_authenticate_and_may_not_approve_their_own_requests() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let setup = base(&upstream, |r| r).approvals("jwt_audience: lastmile-approvals");
    let proxy = workspace()?.start(&setup).await?;
    let id = park(&proxy, "INV-00000013").await?;

    let own = decide(&proxy, AGENT_USER, &id, "approve", None).await?;
    expect_status(&own, 403)?;
    ensure!(
        own.json()?["error"]["code"] == "self_approval",
        "{}",
        own.text()
    );

    let path = format!("/approvals/{id}/approve");
    let anonymous = proxy.admin_call(Method::POST, &path, None, None).await?;
    expect_status(&anonymous, 401)?;
    let forged = proxy
        .admin_call(Method::POST, &path, Some("not-a-token"), None)
        .await?;
    expect_status(&forged, 401)?;
    let list = proxy
        .admin_call(Method::GET, "/approvals", None, None)
        .await?;
    expect_status(&list, 401).context("the queue itself needs a credential")?;

    // JWTs issued to the approvals audience: with the approver role, and without.
    let mut claims = jwt::claims("carol", "");
    claims["aud"] = json!("lastmile-approvals");
    claims["roles"] = json!(["approver"]);
    let carol = jwt::sign(&claims, jwt::SECRET)?;
    let mut claims = jwt::claims("dave", "");
    claims["aud"] = json!("lastmile-approvals");
    claims["roles"] = json!(["viewer"]);
    let dave = jwt::sign(&claims, jwt::SECRET)?;
    let no_role = proxy
        .admin_call(Method::POST, &path, Some(&dave), None)
        .await?;
    expect_status(&no_role, 403)?;
    ensure!(no_role.json()?["error"]["code"] == "not_an_approver");
    let forged_jwt = jwt::sign(&claims, "not-the-proxy-secret-but-just-as-long-0123")?;
    ensure!(
        proxy
            .admin_call(Method::GET, "/approvals", Some(&forged_jwt), None)
            .await?
            .status
            == 401
    );
    upstream.nothing_received()?;

    // Another user may not poll it; neither may a request without a token.
    let other = poll(&proxy, "u_someone_else", &id, "").await?;
    assert_refusal(&other, 403, "approval_forbidden")?;
    let anonymous = proxy
        .get(&format!("/_lastmile/approvals/{id}"), &[])
        .await?;
    assert_refusal(&anonymous, 403, "approval_forbidden")?;
    let unknown = poll(&proxy, AGENT_USER, "0123456789abcdef0123456789abcdef", "").await?;
    assert_refusal(&unknown, 404, "approval_not_found")?;

    let approved = proxy
        .admin_call(Method::POST, &path, Some(&carol), None)
        .await?;
    expect_status(&approved, 200)?;
    ensure!(approved.json()?["decided_by"] == "carol");
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn two_processes_sharing_one_store_execute_an_approval_once() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let first = Arc::new(start(&upstream).await?);
    let shared = first.workspace().path("state/approvals.db");
    let shared = shared.to_str().context("temporary path is not UTF-8")?;
    let second = Arc::new(
        workspace()?
            .start(&base(&upstream, |r| r).approvals_at(shared, ""))
            .await?,
    );
    for round in 0..3 {
        let id = park(&first, &format!("INV-2000000{round}")).await?;
        // The other process sees the approval parked by the first.
        ensure!(show(&second, &id).await?["state"] == "pending");
        let (a, b) = tokio::join!(
            decide(&first, "alice", &id, "approve", None),
            decide(&second, "bob", &id, "approve", None)
        );
        let statuses = [a?.status, b?.status];
        ensure!(
            statuses.contains(&200) && statuses.contains(&409),
            "round {round}: {statuses:?}"
        );
        let sent = upstream
            .received()
            .iter()
            .filter(|r| r.header("x-approval-id").as_deref() == Some(id.as_str()))
            .count();
        ensure!(sent == 1, "round {round}: {sent} upstream calls");
    }
    Ok(())
}

#[tokio::test]
async fn a_shared_intent_gives_each_user_an_approval_and_the_upstream_acts_once() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let mut ids = Vec::new();
    for user in [AGENT_USER, "u_colleague"] {
        let token = jwt::token(user, "crm.read crm.write")?;
        let reply = proxy
            .post_json(
                "/crm/v1/refunds",
                &[("x-lastmile-user", &token)],
                &json!({"invoice": "INV-00000031", "amount": 5000, "shared": true}),
            )
            .await?;
        expect_status(&reply, 202)?;
        ids.push(
            reply.json()?["approval_id"]
                .as_str()
                .context("approval_id")?
                .to_string(),
        );
    }
    ensure!(ids[0] != ids[1], "each user polls an approval of their own");
    for id in &ids {
        let approved = decide(&proxy, "alice", id, "approve", None).await?;
        ensure!(
            approved.json()?["state"] == "succeeded",
            "{}",
            approved.text()
        );
    }
    upstream
        .only_request()
        .context("the shared intent acts once")?;
    for (user, id) in [(AGENT_USER, &ids[0]), ("u_colleague", &ids[1])] {
        let reply = poll(&proxy, user, id, "").await?;
        expect_status(&reply, 201)?;
        ensure!(reply.text() == CREATED_BODY, "{}", reply.text());
    }
    Ok(())
}
