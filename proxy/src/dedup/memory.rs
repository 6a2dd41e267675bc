//! The in-process store: a sharded map, for a single replica.
//!
//! Atomicity comes from the map's shard lock, held only for the pure transition (never
//! across an await). Duplicates waiting on an in-flight key are woken by a [`Notify`]
//! when it finishes. The store is bounded by entry count and stored bytes; when full,
//! expired entries are swept and then completed ones evicted oldest first. In-flight
//! and unknown entries are never evicted: with nothing to evict, new keys get
//! [`Begin::Full`].

use super::clock::Clock;
use super::key::Key;
use super::state::{self, Attempt, Begin, Entry, Finish, Released, State, Write};
use super::store::{DedupStore, StoreError, StoreFuture};
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often a full store may sweep expired entries (each sweep walks the whole map).
const SWEEP_EVERY_MS: u64 = 1_000;

/// Bounds on what the store holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_stored_bytes: usize,
}

struct Slot {
    entry: Entry,
    /// Wakes duplicates waiting for this entry to leave the in-flight state.
    changed: Arc<Notify>,
}

pub struct MemoryStore {
    entries: DashMap<Key, Slot>,
    /// Completed keys in completion order, for oldest-first eviction. Items whose entry
    /// has since changed are skipped (the token no longer matches).
    completed: Mutex<VecDeque<(Key, u64)>>,
    stored_bytes: AtomicUsize,
    last_sweep_ms: AtomicU64,
    limits: Limits,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    pub fn new(limits: Limits, clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            entries: DashMap::new(),
            completed: Mutex::new(VecDeque::new()),
            stored_bytes: AtomicUsize::new(0),
            last_sweep_ms: AtomicU64::new(0),
            limits,
            clock,
        }
    }

    fn begin_now(&self, attempt: &Attempt) -> Begin {
        let now = self.clock.now_ms();
        let token = super::new_token();
        if let Some(begun) = self.begin_existing(attempt, now, token) {
            return begun;
        }
        if self.entries.len() >= self.limits.max_entries && !self.make_room(now) {
            return Begin::Full;
        }
        match self.entries.entry(attempt.key) {
            MapEntry::Occupied(mut slot) => self.apply_begin(slot.get_mut(), attempt, now, token),
            MapEntry::Vacant(vacant) => {
                let (begun, write) = state::begin(None, attempt, now, token);
                if let Some(Write::Put(entry)) = write {
                    vacant.insert(Slot {
                        entry,
                        changed: Arc::new(Notify::new()),
                    });
                }
                begun
            }
        }
    }

    fn begin_existing(&self, attempt: &Attempt, now: u64, token: u64) -> Option<Begin> {
        let mut slot = self.entries.get_mut(&attempt.key)?;
        Some(self.apply_begin(&mut slot, attempt, now, token))
    }

    fn apply_begin(&self, slot: &mut Slot, attempt: &Attempt, now: u64, token: u64) -> Begin {
        let (begun, write) = state::begin(Some(&slot.entry), attempt, now, token);
        if let Some(Write::Put(entry)) = write {
            self.forget(&slot.entry);
            slot.entry = entry;
        }
        begun
    }

    /// Frees at least one entry: first expired ones, then the oldest completed one.
    fn make_room(&self, now: u64) -> bool {
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_EVERY_MS
            && self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.entries.retain(|_, slot| {
                let keep = state::live(&slot.entry, now);
                if !keep {
                    self.forget(&slot.entry);
                    slot.changed.notify_waiters();
                }
                keep
            });
            if self.entries.len() < self.limits.max_entries {
                return true;
            }
        }
        self.evict_oldest_completed()
    }

    fn evict_oldest_completed(&self) -> bool {
        loop {
            let next = self
                .completed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            let Some((key, token)) = next else {
                return false;
            };
            let evicted = self.entries.remove_if(&key, |_, slot| {
                slot.entry.token == token
                    && matches!(
                        slot.entry.state,
                        State::Completed { .. } | State::NotRetained { .. }
                    )
            });
            if let Some((_, slot)) = evicted {
                self.forget(&slot.entry);
                return true;
            }
        }
    }

    /// Accounts for an entry leaving the store (or being replaced).
    fn forget(&self, entry: &Entry) {
        if let State::Completed { response, .. } = &entry.state {
            self.stored_bytes
                .fetch_sub(response.weight(), Ordering::Relaxed);
        }
    }

    fn finish_now(&self, key: &Key, token: u64, outcome: Finish) {
        let now = self.clock.now_ms();
        let added = match &outcome {
            Finish::Completed(response) => response.weight(),
            _ => 0,
        };
        let completed = matches!(outcome, Finish::Completed(_) | Finish::NotRetained { .. });
        let Some(mut slot) = self.entries.get_mut(key) else {
            return;
        };
        match state::finish(Some(&slot.entry), token, outcome, now) {
            None => {}
            Some(Write::Put(entry)) => {
                slot.entry = entry;
                slot.changed.notify_waiters();
                drop(slot);
                self.stored_bytes.fetch_add(added, Ordering::Relaxed);
                if completed {
                    self.remember_completed(*key, token);
                }
            }
            Some(Write::Delete) => {
                let changed = slot.changed.clone();
                drop(slot);
                self.entries.remove_if(key, |_, s| s.entry.token == token);
                changed.notify_waiters();
            }
        }
        while self.stored_bytes.load(Ordering::Relaxed) > self.limits.max_stored_bytes {
            if !self.evict_oldest_completed() {
                break;
            }
        }
    }

    fn remember_completed(&self, key: Key, token: u64) {
        let mut completed = self
            .completed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        completed.push_back((key, token));
        // Drop stale items so the queue stays proportional to the map.
        if completed.len() > 2 * self.limits.max_entries.max(1) {
            completed.retain(|(k, t)| {
                self.entries
                    .get(k)
                    .is_some_and(|slot| slot.entry.token == *t)
            });
        }
    }

    fn release_now(&self, key: &Key) -> Released {
        let now = self.clock.now_ms();
        let Some(slot) = self.entries.get(key) else {
            return Released::NotFound;
        };
        let (released, write) = state::release(Some(&slot.entry), now);
        let token = slot.entry.token;
        let changed = slot.changed.clone();
        drop(slot);
        if write == Some(Write::Delete) {
            if let Some((_, slot)) = self.entries.remove_if(key, |_, s| s.entry.token == token) {
                self.forget(&slot.entry);
            }
            changed.notify_waiters();
        }
        released
    }

    async fn changed_now(&self, key: &Key, deadline: Instant) {
        let Some(changed) = self.entries.get(key).map(|slot| slot.changed.clone()) else {
            return;
        };
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // The entry may have finished between the caller's look and the subscription.
        let still_in_flight = self
            .entries
            .get(key)
            .is_some_and(|slot| matches!(slot.entry.state, State::InFlight { .. }));
        if still_in_flight {
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

impl DedupStore for MemoryStore {
    fn begin<'a>(&'a self, attempt: &'a Attempt) -> StoreFuture<'a, Begin> {
        Box::pin(std::future::ready(Ok(self.begin_now(attempt))))
    }

    fn finish<'a>(&'a self, key: &'a Key, token: u64, outcome: Finish) -> StoreFuture<'a, ()> {
        self.finish_now(key, token, outcome);
        Box::pin(std::future::ready(Ok(())))
    }

    fn changed<'a>(
        &'a self,
        key: &'a Key,
        deadline: Instant,
        _round: u32,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.changed_now(key, deadline))
    }

    fn get<'a>(&'a self, key: &'a Key) -> StoreFuture<'a, Option<Entry>> {
        let now = self.clock.now_ms();
        let entry = self
            .entries
            .get(key)
            .map(|slot| slot.entry.clone())
            .filter(|e| state::live(e, now));
        Box::pin(std::future::ready(Ok(entry)))
    }

    fn release<'a>(&'a self, key: &'a Key) -> StoreFuture<'a, Released> {
        Box::pin(std::future::ready(Ok(self.release_now(key))))
    }

    fn entries(&self) -> StoreFuture<'_, usize> {
        Box::pin(std::future::ready(Ok::<_, StoreError>(self.entries.len())))
    }
}
