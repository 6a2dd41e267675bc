//! Dedup through the real binary: at most one upstream effect per intent, replays,
//! unknown outcomes and their release, agent keys, and the shared Redis store.

use crate::harness::redis::RedisServer;
use crate::harness::upstream::CREATED_BODY;
use crate::harness::{
    assert_refusal, eventually, expect_status, policies, Behaviour, Proxy, Reply, RouteSpec, Setup,
    Upstream, Workspace, ADMIN_TOKEN,
};
use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::Method;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn start(
    upstream: &Upstream,
    route: impl FnOnce(RouteSpec) -> RouteSpec,
    setup: impl FnOnce(Setup) -> Setup,
) -> Result<Proxy> {
    let spec = route(RouteSpec::new("crm", "/crm", upstream.url()));
    // Bursts of a thousand concurrent duplicates: above the default in-flight limit
    // (load shedding has tests of its own), and on a loaded two-core machine a debug
    // build's evaluations can exceed the default time limit (a fail-closed refusal that
    // would hide what these tests are about).
    let base = Setup::new(vec![spec])
        .admin_token()
        .eval_timeout_ms(10_000)
        .server("{max_in_flight: 4096, max_connections: 4096}");
    Workspace::with_policy(policies::DEDUP_POLICY)?
        .start(&setup(base))
        .await
}

fn replayed(reply: &Reply) -> bool {
    reply.header("lastmile-replayed").as_deref() == Some("true")
}

/// Sends `count` POSTs at once, spread over `proxies`; request `i` carries the intent
/// `intent(i)`.
async fn burst(
    proxies: &[Arc<Proxy>],
    count: usize,
    intent: impl Fn(usize) -> serde_json::Value,
) -> Result<Vec<Reply>> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let proxy = proxies[i % proxies.len()].clone();
        let body = intent(i);
        tasks.spawn(async move { proxy.post_json("/crm/v1/invoices", &[], &body).await });
    }
    let mut replies = Vec::with_capacity(count);
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply??);
    }
    Ok(replies)
}

/// Every reply is the one upstream answer (first or replayed) or a 409 in flight;
/// returns how many were first answers.
fn check_burst(replies: &[Reply]) -> Result<usize> {
    let mut first = 0;
    for reply in replies {
        match reply.status {
            200 if replayed(reply) => {}
            200 => first += 1,
            409 => {
                assert_refusal(reply, 409, "duplicate_in_flight")?;
                ensure!(reply.header("retry-after").as_deref() == Some("1"));
            }
            other => anyhow::bail!("unexpected status {other}: {}", reply.text()),
        }
    }
    Ok(first)
}

/// 1,000 concurrent POSTs of one intent reach the upstream once; then 1,000 over 50
/// intents (that one among them, already completed) reach it 49 more times.
async fn one_intent_then_fifty(proxies: &[Arc<Proxy>], upstream: &Upstream) -> Result<()> {
    let replies = burst(proxies, 1000, |_| json!({"invoice": "INV-1"})).await?;
    ensure!(check_burst(&replies)? == 1);
    upstream.only_request().context("upstream calls")?;
    let replies = burst(
        proxies,
        1000,
        |i| json!({"invoice": format!("INV-{}", i % 50)}),
    )
    .await?;
    // INV-1 completed in the first burst: its 20 requests are all replays.
    ensure!(check_burst(&replies)? == 49);
    upstream.expect_requests(50).context("upstream calls")?;
    Ok(())
}

#[tokio::test]
async fn a_thousand_concurrent_identical_posts_reach_the_upstream_once() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_millis(300))).await?;
    let proxy = Arc::new(start(&upstream, |r| r, |s| s).await?);
    one_intent_then_fifty(std::slice::from_ref(&proxy), &upstream).await?;
    let metrics = proxy.metrics().await?;
    ensure!(
        metrics.get(
            "lastmile_dedup_total",
            &[("route", "crm"), ("result", "first")]
        ) == Some(50.0)
    );
    Ok(())
}

#[tokio::test]
async fn two_replicas_sharing_redis_reach_the_upstream_once() -> Result<()> {
    let Some(redis) = RedisServer::start().await? else {
        return Ok(());
    };
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_millis(300))).await?;
    // Two debug-build proxies, a thousand connections and Redis share two cores here:
    // a generous command timeout keeps CPU starvation from turning into (correct,
    // fail-closed) 503s, which would hide what this test is about.
    let dedup = format!(
        "{{store: redis, redis: {{url: {}, timeout_ms: 10000}}}}",
        serde_json::Value::from(redis.url())
    );
    let a = Arc::new(start(&upstream, |r| r, |s| s.dedup(&dedup)).await?);
    let b = Arc::new(start(&upstream, |r| r, |s| s.dedup(&dedup)).await?);
    one_intent_then_fifty(&[a, b], &upstream).await?;
    Ok(())
}

#[tokio::test]
async fn a_replay_is_the_original_response_byte_for_byte() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream, |r| r, |s| s).await?;
    let first = proxy
        .post_json(
            "/crm/v1/invoices",
            &[],
            &json!({"invoice": "INV-7", "amount": 10}),
        )
        .await?;
    expect_status(&first, 201)?;
    ensure!(!replayed(&first));
    ensure!(
        first.header("set-cookie").is_some(),
        "the first response is passed on whole"
    );
    let key = first
        .header("lastmile-dedup-key")
        .context("no dedup key header")?;

    // Same intent, keys reordered and respaced: a replay.
    let again = proxy
        .request(
            Method::POST,
            "/crm/v1/invoices",
            &[("content-type", "application/json")],
            Bytes::from_static(b"{ \"amount\" : 10.0 ,\n \"invoice\":\"INV-7\"}"),
        )
        .await?;
    expect_status(&again, 201)?;
    ensure!(replayed(&again));
    ensure!(again.body == first.body && again.body == CREATED_BODY.as_bytes());
    ensure!(again.header("x-upstream").as_deref() == Some("e2e"));
    ensure!(again.header("content-type").as_deref() == Some("application/json"));
    ensure!(
        again.header("set-cookie").is_none(),
        "a replay never hands out a session"
    );
    ensure!(again.header("lastmile-decision").as_deref() == Some("replayed"));
    ensure!(again.header("lastmile-dedup-key") == Some(key.clone()));
    upstream.only_request()?;

    // A changed field is another intent.
    let changed = proxy
        .post_json(
            "/crm/v1/invoices",
            &[],
            &json!({"invoice": "INV-7", "amount": 11}),
        )
        .await?;
    expect_status(&changed, 201)?;
    ensure!(!replayed(&changed));
    upstream.expect_requests(2)?;

    // Operators see the entry; its body is not exposed.
    let entry = proxy.admin_operator_get(&format!("/dedup/{key}")).await?;
    expect_status(&entry, 200)?;
    let entry = entry.json()?;
    ensure!(
        entry["state"] == "completed" && entry["status"] == 201,
        "{entry}"
    );
    ensure!(!entry.to_string().contains("INV-00000007"));
    let trace = proxy
        .trace_record(&again.header("lastmile-trace-id").context("trace id")?)
        .await?;
    ensure!(
        trace["dedup"] == json!({"key": key, "result": "replayed"}),
        "{trace}"
    );
    ensure!(trace["outcome"] == "replayed");
    Ok(())
}

#[tokio::test]
async fn intents_are_per_user_unless_shared() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream, |r| r, |s| s).await?;
    let alice = crate::harness::jwt::token("u_alice", "crm.write")?;
    let bob = crate::harness::jwt::token("u_bob", "crm.write")?;
    for (body, calls) in [
        (json!({"invoice": "INV-1"}), 2),
        (json!({"invoice": "INV-2", "shared": true}), 1),
    ] {
        let before = upstream.received().len();
        for token in [&alice, &bob] {
            let reply = proxy
                .post_json("/crm/v1/invoices", &[("x-lastmile-user", token)], &body)
                .await?;
            expect_status(&reply, 201)?;
        }
        ensure!(upstream.received().len() - before == calls, "{body}");
    }
    Ok(())
}

async fn post_note(proxy: &Proxy, key: &str, body: &'static str) -> Result<Reply> {
    proxy
        .request(
            Method::POST,
            "/crm/v1/notes",
            &[("content-type", "text/plain"), ("idempotency-key", key)],
            Bytes::from_static(body.as_bytes()),
        )
        .await
}

#[tokio::test]
async fn agent_idempotency_keys_are_validated_scoped_and_bound_to_one_request() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    // Notes are plain text, forwarded unread; their bytes make the fingerprint.
    let proxy = start(
        &upstream,
        |r| r.opaque_content_types(&["text/plain"]),
        |s| s,
    )
    .await?;
    for bad in ["", "has space", &"k".repeat(256)] {
        assert_refusal(
            &post_note(&proxy, bad, "x").await?,
            400,
            "invalid_idempotency_key",
        )?;
    }
    let twice = proxy
        .request(
            Method::POST,
            "/crm/v1/notes",
            &[("idempotency-key", "a"), ("idempotency-key", "b")],
            Bytes::new(),
        )
        .await?;
    // Sent twice, the key is an ambiguous header, refused before it is read.
    assert_refusal(&twice, 400, "ambiguous_header")?;
    upstream.nothing_received()?;

    // A text body with no policy intent: the agent's key names the window.
    let first = post_note(&proxy, "note-42", "hello").await?;
    expect_status(&first, 201)?;
    ensure!(!replayed(&first));
    ensure!(
        upstream.received()[0].header("idempotency-key").is_none(),
        "lastmile owns the key; the upstream is only told when the route says so"
    );
    ensure!(replayed(&post_note(&proxy, "note-42", "hello").await?));
    let reused = post_note(&proxy, "note-42", "goodbye").await?;
    assert_refusal(&reused, 422, "idempotency_key_mismatch")?;
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn an_upstream_timeout_holds_the_key_until_an_operator_releases_it() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Sleep(Duration::from_secs(3))).await?;
    let proxy = start(&upstream, |r| r.timeout_ms(300), |s| s).await?;
    let body = json!({"invoice": "INV-9"});
    let first = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    let error = assert_refusal(&first, 504, "upstream_timeout")?;
    ensure!(error["error"]["outcome"] == "unknown");
    let key = first.header("lastmile-dedup-key").context("no dedup key")?;

    let retry = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    let error = assert_refusal(&retry, 409, "outcome_unknown")?;
    ensure!(error["error"]["outcome"] == "unknown");
    upstream.only_request()?;

    let entry = proxy
        .admin_operator_get(&format!("/dedup/{key}"))
        .await?
        .json()?;
    ensure!(
        entry["state"] == "unknown" && entry["reason"] == "upstream_timeout",
        "{entry}"
    );
    let release = format!("/dedup/{key}/release");
    expect_status(&proxy.admin_post(&release, None).await?, 401)?;
    ensure!(
        proxy
            .admin_post(&release, Some("wrong-token"))
            .await?
            .status
            == 401
    );
    upstream.only_request()?;
    let released = proxy.admin_post(&release, Some(ADMIN_TOKEN)).await?;
    expect_status(&released, 200)?;
    expect_status(&proxy.admin_post(&release, Some(ADMIN_TOKEN)).await?, 404)?;

    let after = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    assert_refusal(&after, 504, "upstream_timeout")?;
    upstream
        .expect_requests(2)
        .context("the released retry goes upstream")?;
    Ok(())
}

#[tokio::test]
async fn a_refused_connection_releases_the_key() -> Result<()> {
    let dead = crate::harness::upstream::dead_url()?;
    let proxy = Workspace::with_policy(policies::DEDUP_POLICY)?
        .start(&Setup::new(vec![RouteSpec::new("crm", "/crm", dead)]))
        .await?;
    let body = json!({"invoice": "INV-3"});
    for _ in 0..2 {
        let reply = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
        let error = assert_refusal(&reply, 502, "upstream_unreachable")?;
        ensure!(
            error["error"].get("outcome").is_none(),
            "nothing was sent: {error}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_upstream_4xx_releases_the_key_and_a_5xx_holds_it() -> Result<()> {
    for (status, retry_status) in [(422, 422), (503, 409)] {
        let upstream = Upstream::start(Behaviour::Reply {
            status,
            body: "{\"error\":\"upstream\"}",
        })
        .await?;
        let proxy = start(&upstream, |r| r, |s| s).await?;
        let body = json!({"invoice": "INV-4"});
        let first = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
        expect_status(&first, status).context("the upstream's answer, unchanged")?;
        ensure!(
            first.text() == "{\"error\":\"upstream\"}",
            "the upstream's answer, unchanged"
        );
        let retry = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
        expect_status(&retry, retry_status).with_context(|| format!("after {status}"))?;
        if retry_status == 409 {
            assert_refusal(&retry, 409, "outcome_unknown")?;
        }
        upstream.expect_requests(if status == 422 { 2 } else { 1 })?;
    }
    Ok(())
}

#[tokio::test]
async fn an_upstream_that_deduplicates_may_be_retried_with_the_same_key() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Reply {
        status: 500,
        body: "{}",
    })
    .await?;
    let proxy = start(
        &upstream,
        |r| r.dedup("{upstream_idempotency_header: Idempotency-Key}"),
        |s| s,
    )
    .await?;
    let body = json!({"invoice": "INV-5"});
    for _ in 0..2 {
        ensure!(
            proxy
                .post_json("/crm/v1/invoices", &[], &body)
                .await?
                .status
                == 500
        );
    }
    let sent: Vec<_> = upstream
        .received()
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    ensure!(
        sent.len() == 2 && sent[0].is_some() && sent[0] == sent[1],
        "{sent:?}"
    );
    Ok(())
}

#[tokio::test]
async fn lastmile_refusals_never_take_a_key() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream, |r| r, |s| s).await?;
    let denied = proxy
        .post_json(
            "/crm/v1/invoices",
            &[],
            &json!({"invoice": "INV-6", "deny": true}),
        )
        .await?;
    assert_refusal(&denied, 403, "denied")?;
    let allowed = proxy
        .post_json("/crm/v1/invoices", &[], &json!({"invoice": "INV-6"}))
        .await?;
    expect_status(&allowed, 201)?;
    ensure!(!replayed(&allowed), "{}", allowed.text());
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn a_response_too_large_to_keep_is_passed_on_but_not_replayed() -> Result<()> {
    let upstream = Upstream::start(Behaviour::Large(4096)).await?;
    let proxy = start(
        &upstream,
        |r| r.dedup("{max_stored_body_bytes: 1024}"),
        |s| s,
    )
    .await?;
    let body = json!({"invoice": "INV-8"});
    let first = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    expect_status(&first, 200)?;
    ensure!(first.body.len() == 4096);
    let retry = proxy.post_json("/crm/v1/invoices", &[], &body).await?;
    let error = assert_refusal(&retry, 409, "completed_not_retained")?;
    ensure!(error["error"]["original_status"] == 200, "{error}");
    upstream.only_request()?;
    Ok(())
}

#[tokio::test]
async fn while_redis_is_down_mutations_are_refused_and_nothing_is_sent_twice() -> Result<()> {
    let Some(mut redis) = RedisServer::start().await? else {
        return Ok(());
    };
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream, |r| r, |s| s.redis(&redis.url())).await?;
    let a = json!({"invoice": "INV-A"});
    expect_status(&proxy.post_json("/crm/v1/invoices", &[], &a).await?, 201)?;

    redis.kill();
    for body in [&a, &json!({"invoice": "INV-B"})] {
        let reply = proxy.post_json("/crm/v1/invoices", &[], body).await?;
        assert_refusal(&reply, 503, "dedup_unavailable")?;
        ensure!(reply.header("retry-after").is_some());
    }
    // Requests no window governs are not affected.
    expect_status(&proxy.get("/crm/v1/invoices", &[]).await?, 201)?;
    upstream.expect_requests(2)?;

    redis.restart().await?;
    // Until the connection is re-established, requests are still refused (and counted).
    let refused_while_reconnecting = std::sync::atomic::AtomicUsize::new(0);
    let resumed = eventually(
        "service to resume",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            let reply = proxy.post_json("/crm/v1/invoices", &[], &a).await?;
            if reply.status == 503 {
                assert_refusal(&reply, 503, "dedup_unavailable")?;
                refused_while_reconnecting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return Ok(None);
            }
            Ok(Some(reply))
        },
    )
    .await?;
    expect_status(&resumed, 201)?;
    ensure!(
        replayed(&resumed),
        "the window survived: {}",
        resumed.text()
    );
    ensure!(
        proxy
            .post_json("/crm/v1/invoices", &[], &json!({"invoice": "INV-B"}))
            .await?
            .status
            == 201
    );
    upstream.expect_requests(3)?;
    let metrics = proxy.metrics().await?;
    ensure!(
        metrics.get(
            "lastmile_dedup_total",
            &[("route", "crm"), ("result", "store_unavailable")]
        ) == Some(2.0 + refused_while_reconnecting.into_inner() as f64)
    );
    Ok(())
}
