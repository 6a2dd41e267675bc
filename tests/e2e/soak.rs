//! A bounded load-and-fault soak: steady traffic while the policy is rewritten over and
//! over, the upstream is killed and restarted and Redis is restarted. However the faults
//! land, no intent reaches the upstream twice, nothing reaches it without a decision,
//! denied requests never reach it, the proxy keeps running, and its memory stays bounded.
//! `LASTMILE_SOAK_SECONDS` sets the length (default 8, the CI form).

use crate::harness::redis::RedisServer;
use crate::harness::upstream::Received;
use crate::harness::{eventually, expect_status, Behaviour, RouteSpec, Setup, Upstream, Workspace};
use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The decision marks every request it allows, with the revision that allowed it.
fn policy(revision: usize) -> String {
    format!(
        r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {{}}

decision := {{"deny": deny, "dedup": {{"key": body, "window_seconds": 3600}}, "add_headers": {{"x-decided": "rev-{revision}"}}}}

deny contains {{"code": "soak_deny", "message": "denied"}} if body.deny == true
"#
    )
}

const INTENTS: usize = 60;
const WORKERS: usize = 16;
const RSS_LIMIT_KB: u64 = 256 * 1024;

/// What the traffic saw, by status.
type Statuses = Arc<Mutex<HashMap<u16, usize>>>;

#[tokio::test]
async fn faults_under_load_never_duplicate_or_bypass_a_decision() -> Result<()> {
    let Some(mut redis) = RedisServer::start().await? else {
        return Ok(());
    };
    let seconds: u64 = std::env::var("LASTMILE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let duration = Duration::from_secs(seconds.max(4));
    let mut upstream = Some(Upstream::start(Behaviour::created()).await?);
    let upstream_addr = upstream.as_ref().context("upstream")?.addr;
    let route = RouteSpec::new("crm", "/crm", format!("http://{upstream_addr}")).timeout_ms(1000);
    let setup = Setup::new(vec![route])
        .redis(&redis.url())
        .server("{max_in_flight: 4096}");
    let proxy = Arc::new(Workspace::with_policy(&policy(0))?.start(&setup).await?);
    let pid = proxy.pid();

    let started = Instant::now();
    let deadline = started + duration;
    let statuses = Statuses::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (proxy, statuses, sent) = (proxy.clone(), statuses.clone(), sent.clone());
        workers.spawn(async move {
            let mut n = worker;
            while Instant::now() < deadline {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let intent = (n >> 33) % INTENTS;
                let body = if (n >> 20) % 5 == 0 {
                    json!({"invoice": format!("S-{intent}"), "deny": true})
                } else {
                    json!({"invoice": format!("S-{intent}")})
                };
                let status = match proxy.post_json("/crm/v1/invoices", &[], &body).await {
                    Ok(reply) => reply.status,
                    Err(_) => 0,
                };
                sent.fetch_add(1, Ordering::Relaxed);
                *statuses
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(status)
                    .or_default() += 1;
            }
        });
    }

    // The faults, spread over the run; the policy is rewritten every 300 ms throughout.
    let mut received: Vec<Received> = Vec::new();
    let mut revision = 0;
    let (mut killed, mut restarted, mut redis_restarted) = (false, false, false);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        revision += 1;
        proxy
            .workspace()
            .write("policies/lastmile.rego", &policy(revision))?;
        let elapsed = started.elapsed().as_secs_f64() / duration.as_secs_f64();
        if elapsed > 0.25 && !killed {
            if let Some(old) = upstream.take() {
                received.extend(old.received());
            }
            killed = true;
        } else if elapsed > 0.4 && !restarted {
            upstream = Some(Upstream::start_at(upstream_addr, Behaviour::created()).await?);
            restarted = true;
        } else if elapsed > 0.6 && !redis_restarted {
            redis.restart().await?;
            redis_restarted = true;
        }
    }
    while let Some(done) = workers.join_next().await {
        done?;
    }
    ensure!(
        killed && restarted && redis_restarted,
        "not every fault was injected"
    );

    // Service recovered: a new intent goes through once everything is back.
    let recovered = eventually(
        "service to recover",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            let reply = proxy
                .post_json("/crm/v1/invoices", &[], &json!({"invoice": "after-soak"}))
                .await?;
            Ok((reply.status == 201).then_some(()))
        },
    )
    .await;
    received.extend(
        upstream
            .as_ref()
            .map(Upstream::received)
            .unwrap_or_default(),
    );
    recovered?;

    let statuses = statuses
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for status in statuses.keys() {
        ensure!(
            matches!(status, 201 | 403 | 409 | 502 | 503 | 504),
            "unexpected status {status} (0: no response) in {statuses:?}"
        );
    }
    ensure!(
        statuses.get(&201).copied().unwrap_or(0) > 0,
        "nothing succeeded: {statuses:?}"
    );

    let mut per_intent: HashMap<String, usize> = HashMap::new();
    for request in &received {
        let body: serde_json::Value = serde_json::from_slice(&request.body)?;
        ensure!(
            body.get("deny").is_none(),
            "a denied request reached the upstream: {body}"
        );
        ensure!(
            request
                .header("x-decided")
                .is_some_and(|d| d.starts_with("rev-")),
            "a request reached the upstream without a decision: {body}"
        );
        *per_intent.entry(body["invoice"].to_string()).or_default() += 1;
    }
    let duplicated: Vec<_> = per_intent.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        duplicated.is_empty(),
        "intents sent more than once: {duplicated:?}"
    );

    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("the proxy process is gone")?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    ensure!(rss_kb < RSS_LIMIT_KB, "RSS {rss_kb} KiB after the soak");
    expect_status(&proxy.admin_get("/healthz").await?, 200)?;
    eprintln!(
        "soak: {} requests in {duration:?}, {} policy revisions, statuses {statuses:?}, {} upstream calls for {} intents, RSS {rss_kb} KiB",
        sent.load(Ordering::Relaxed),
        revision + 1,
        received.len(),
        per_intent.len()
    );
    if statuses.contains_key(&0) {
        bail!("some requests got no response at all: {statuses:?}");
    }
    Ok(())
}
