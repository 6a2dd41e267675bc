//! At most one upstream effect per intent: dedup windows, replay, and unknown outcomes.
//!
//! The policy names the intent (`decision.dedup`), or the agent sends its own
//! `Idempotency-Key`; [`key`] turns either into a key scoped by route and user. The
//! first request takes the key and goes upstream; duplicates wait for it, get its
//! response replayed, or a 409 when the outcome is unknown. The semantics live in
//! [`state`]; [`memory`] and [`redis`] keep the entries.

pub mod clock;
pub mod key;
pub mod memory;
pub mod redis;
pub mod state;
pub mod store;

use crate::config::{DedupConfig, DedupStoreConfig};
use state::{Attempt, Begin};
use std::sync::Arc;
use std::time::Duration;
use store::{DedupStore, StoreError};
use tokio::time::Instant;

/// Opens the configured store.
pub fn open(
    config: &DedupConfig,
    clock: Arc<dyn clock::Clock>,
) -> anyhow::Result<Arc<dyn DedupStore>> {
    Ok(match &config.store {
        DedupStoreConfig::Memory => Arc::new(memory::MemoryStore::new(
            memory::Limits {
                max_entries: config.max_entries,
                max_stored_bytes: config.max_stored_bytes,
            },
            clock,
        )),
        DedupStoreConfig::Redis(settings) => {
            Arc::new(redis::RedisStore::new(settings, clock).map_err(anyhow::Error::new)?)
        }
    })
}

/// Begins an attempt; while the key is in flight elsewhere, waits up to `wait` for that
/// attempt to finish, then reports what it left (or [`Begin::InFlight`] if it has not).
pub async fn begin_or_wait(
    store: &dyn DedupStore,
    attempt: &Attempt,
    wait: Duration,
) -> Result<Begin, StoreError> {
    let deadline = Instant::now() + wait;
    let mut round = 0;
    loop {
        match store.begin(attempt).await? {
            Begin::InFlight if Instant::now() < deadline => {
                store.changed(&attempt.key, deadline, round).await;
                round = round.saturating_add(1);
            }
            other => return Ok(other),
        }
    }
}

/// A random token naming one attempt, unique across replicas.
fn new_token() -> u64 {
    let mut bytes = [0u8; 8];
    // A failed read of the OS generator leaves zeros; the time keeps tokens distinct.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_le_bytes();
    }
    u64::from_le_bytes(bytes)
}
