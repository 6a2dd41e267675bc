//! One suite, run against every dedup store: the memory store and a real Redis. Time is
//! a manual clock, so windows, holds and leases expire without sleeping.

use crate::harness::redis::RedisServer;
use anyhow::{ensure, Result};
use bytes::Bytes;
use lastmile::config::RedisSettings;
use lastmile::dedup::clock::ManualClock;
use lastmile::dedup::key::{self, Actor, Fingerprint, Intent};
use lastmile::dedup::memory::{Limits, MemoryStore};
use lastmile::dedup::redis::RedisStore;
use lastmile::dedup::state::{Attempt, Begin, Finish, Released, StoredHeader, StoredResponse};
use lastmile::dedup::store::DedupStore;
use lastmile::dedup::{self as dedup};
use std::sync::Arc;
use std::time::Duration;

const WINDOW: Duration = Duration::from_secs(3600);
const LEASE: Duration = Duration::from_secs(30);

fn intent(text: &str) -> regorus::Value {
    regorus::Value::from(text)
}

fn attempt(name: &str) -> Attempt {
    let value = intent(name);
    Attempt {
        key: key::derive("crm", Actor::Anyone, Intent::Policy(&value)),
        fingerprint: Fingerprint::of_intent(&value),
        window: WINDOW,
        lease: LEASE,
        retry_unknown: false,
    }
}

fn response(body: &'static str) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![StoredHeader {
            name: "content-type".into(),
            value: Bytes::from_static(b"application/json"),
        }],
        body: Bytes::from_static(body.as_bytes()),
    }
}

async fn take(store: &dyn DedupStore, attempt: &Attempt) -> Result<u64> {
    match store.begin(attempt).await? {
        Begin::Taken { token } => Ok(token),
        other => anyhow::bail!("expected the key to be taken, got {other:?}"),
    }
}

async fn expect(store: &dyn DedupStore, attempt: &Attempt, want: Begin) -> Result<()> {
    let got = store.begin(attempt).await?;
    ensure!(got == want, "expected {want:?}, got {got:?}");
    Ok(())
}

/// Every behaviour a store must have. `make` builds a store on the given clock with
/// room for `max_entries`.
async fn suite<F>(make: F) -> Result<()>
where
    F: Fn(ManualClock, usize) -> Result<Arc<dyn DedupStore>>,
{
    let clock = ManualClock::new();
    let store = make(clock.clone(), 1000)?;
    let store = store.as_ref();

    // Take, duplicate in flight, complete, replay.
    let a = attempt("a");
    let token = take(store, &a).await?;
    expect(store, &a, Begin::InFlight).await?;
    store
        .finish(&a.key, token, Finish::Completed(response("{\"id\":1}")))
        .await?;
    expect(store, &a, Begin::Completed(response("{\"id\":1}"))).await?;

    // Only the holder's token finishes an entry.
    let b = attempt("b");
    let token_b = take(store, &b).await?;
    store
        .finish(&b.key, token_b.wrapping_add(1), Finish::Release)
        .await?;
    expect(store, &b, Begin::InFlight).await?;
    // Released: the next attempt takes it again.
    store.finish(&b.key, token_b, Finish::Release).await?;
    take(store, &b).await?;

    // Same key, different fingerprint.
    let mut other = attempt("a");
    other.fingerprint = Fingerprint::of_intent(&intent("something else"));
    expect(store, &other, Begin::Mismatch).await?;

    // Unknown outcome: held, visible to operators, released by them.
    let c = attempt("c");
    let token_c = take(store, &c).await?;
    store
        .finish(
            &c.key,
            token_c,
            Finish::Unknown {
                reason: "upstream_timeout".into(),
                hold: None,
            },
        )
        .await?;
    expect(
        store,
        &c,
        Begin::Unknown {
            reason: "upstream_timeout".into(),
        },
    )
    .await?;
    let entry = store.get(&c.key).await?;
    ensure!(
        entry.as_ref().map(|e| e.state.name()) == Some("unknown"),
        "{entry:?}"
    );
    ensure!(store.release(&c.key).await? == Released::Released);
    ensure!(store.release(&c.key).await? == Released::NotFound);
    take(store, &c).await?;
    // An in-flight key cannot be released.
    ensure!(store.release(&c.key).await? == Released::InFlight);

    // A bounded hold ends before the window.
    let d = attempt("d");
    let token_d = take(store, &d).await?;
    store
        .finish(
            &d.key,
            token_d,
            Finish::Unknown {
                reason: "upstream_status_503".into(),
                hold: Some(Duration::from_secs(60)),
            },
        )
        .await?;
    clock.advance(Duration::from_secs(59));
    expect(
        store,
        &d,
        Begin::Unknown {
            reason: "upstream_status_503".into(),
        },
    )
    .await?;
    clock.advance(Duration::from_secs(2));
    take(store, &d).await?;

    // A response too large to keep.
    let e = attempt("e");
    let token_e = take(store, &e).await?;
    store
        .finish(&e.key, token_e, Finish::NotRetained { status: 200 })
        .await?;
    expect(store, &e, Begin::NotRetained { status: 200 }).await?;

    // A holder that vanishes: its lease lapses into an unknown outcome.
    let f = attempt("f");
    take(store, &f).await?;
    clock.advance(LEASE + Duration::from_secs(1));
    expect(
        store,
        &f,
        Begin::Unknown {
            reason: "lease_lapsed".into(),
        },
    )
    .await?;

    // An upstream that deduplicates itself may be retried with the same key.
    let mut g = attempt("g");
    g.retry_unknown = true;
    let token_g = take(store, &g).await?;
    store
        .finish(
            &g.key,
            token_g,
            Finish::Unknown {
                reason: "upstream_status_500".into(),
                hold: None,
            },
        )
        .await?;
    take(store, &g).await?;

    // The window ends: the completed key from the start is free again.
    expect(store, &a, Begin::Completed(response("{\"id\":1}"))).await?;
    clock.advance(WINDOW);
    take(store, &a).await?;

    // Waiting duplicates are woken by the finish, not by their deadline.
    let h = attempt("h");
    let token_h = take(store, &h).await?;
    let started = std::time::Instant::now();
    let (waited, ()) = tokio::join!(
        dedup::begin_or_wait(store, &h, Duration::from_secs(20)),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = store
                .finish(&h.key, token_h, Finish::Completed(response("{}")))
                .await;
        }
    );
    ensure!(waited? == Begin::Completed(response("{}")));
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "the waiter was not woken by the finish"
    );
    // And a wait that runs out reports the key still in flight.
    let i = attempt("i");
    take(store, &i).await?;
    let waited = dedup::begin_or_wait(store, &i, Duration::from_millis(50)).await?;
    ensure!(waited == Begin::InFlight, "{waited:?}");

    // Many attempts at once: exactly one takes the key.
    let j = Arc::new(attempt("j"));
    let shared = make(clock.clone(), 1000)?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (store, j) = (shared.clone(), j.clone());
        tasks.spawn(async move { store.begin(&j).await });
    }
    let mut taken = 0;
    while let Some(result) = tasks.join_next().await {
        match result?? {
            Begin::Taken { .. } => taken += 1,
            Begin::InFlight => {}
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    ensure!(taken == 1, "{taken} attempts took one key");
    Ok(())
}

/// A full store evicts only completed entries, oldest first, then refuses.
async fn bounds<F>(make: F) -> Result<()>
where
    F: Fn(ManualClock, usize) -> Result<Arc<dyn DedupStore>>,
{
    let clock = ManualClock::new();
    let store = make(clock.clone(), 3)?;
    let store = store.as_ref();
    let (one, two, three, four) = (attempt("1"), attempt("2"), attempt("3"), attempt("4"));
    for a in [&one, &two] {
        let token = take(store, a).await?;
        clock.advance(Duration::from_millis(10));
        store
            .finish(&a.key, token, Finish::Completed(response("{}")))
            .await?;
    }
    let token = take(store, &three).await?;
    store
        .finish(
            &three.key,
            token,
            Finish::Unknown {
                reason: "upstream_timeout".into(),
                hold: None,
            },
        )
        .await?;
    // Full: "1" (the oldest completed) makes room for "4".
    take(store, &four).await?;
    take(store, &one).await?;
    ensure!(store.get(&two.key).await?.is_none(), "2 should be evicted");
    // Now: 4 and 1 in flight, 3 unknown: nothing may be evicted.
    expect(store, &attempt("5"), Begin::Full).await?;
    ensure!(
        store.get(&three.key).await?.is_some(),
        "unknown entries are never evicted"
    );
    ensure!(store.entries().await? == 3);
    Ok(())
}

fn memory(clock: ManualClock, max_entries: usize) -> Result<Arc<dyn DedupStore>> {
    Ok(Arc::new(MemoryStore::new(
        Limits {
            max_entries,
            max_stored_bytes: 1 << 20,
        },
        Arc::new(clock),
    )))
}

fn redis_at(url: String) -> impl Fn(ManualClock, usize) -> Result<Arc<dyn DedupStore>> {
    let prefix = std::sync::atomic::AtomicUsize::new(0);
    move |clock, max_entries| {
        // Each store gets its own key space on the shared server.
        let n = prefix.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let settings = RedisSettings {
            url: url.clone(),
            key_prefix: format!("test{n}:"),
            timeout: Duration::from_secs(2),
            max_entries,
        };
        Ok(Arc::new(RedisStore::new(&settings, Arc::new(clock))?))
    }
}

#[tokio::test]
async fn memory_store_semantics() -> Result<()> {
    suite(memory).await
}

#[tokio::test]
async fn memory_store_bounds() -> Result<()> {
    bounds(memory).await
}

#[tokio::test]
async fn redis_store_semantics() -> Result<()> {
    let Some(redis) = RedisServer::start().await? else {
        return Ok(());
    };
    suite(redis_at(redis.url())).await
}

#[tokio::test]
async fn redis_store_bounds() -> Result<()> {
    let Some(redis) = RedisServer::start().await? else {
        return Ok(());
    };
    bounds(redis_at(redis.url())).await
}

#[tokio::test]
async fn redis_store_fails_while_redis_is_down_and_recovers() -> Result<()> {
    let Some(mut redis) = RedisServer::start().await? else {
        return Ok(());
    };
    let store = redis_at(redis.url())(ManualClock::new(), 100)?;
    let a = attempt("a");
    let token = take(store.as_ref(), &a).await?;
    store
        .finish(&a.key, token, Finish::Completed(response("{}")))
        .await?;
    redis.kill();
    ensure!(
        store.begin(&attempt("b")).await.is_err(),
        "a store without Redis must fail, not answer"
    );
    redis.restart().await?;
    let recovered = crate::harness::eventually(
        "the store to reconnect",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { Ok(store.begin(&a).await.ok()) },
    )
    .await?;
    // The completed entry survived the restart (Redis persisted it).
    ensure!(
        recovered == Begin::Completed(response("{}")),
        "{recovered:?}"
    );
    Ok(())
}
