//! The exchanged tokens of one route, by acting user: a bounded map of slots, each
//! holding the user's current token (until shortly before it expires), a recent
//! failure (so a failing endpoint is not asked again at once), and the lock that keeps
//! one exchange in flight per user.
//!
//! A route has one scope (its configured `scope`, `audience`, `resource`), so the key
//! (route, user, scope) is the user's subject within the route's cache.

use http::HeaderValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// More users than this per route and idle entries are dropped to make room.
pub const MAX_ENTRIES: usize = 10_000;

/// How long a failed exchange is remembered: calls meanwhile are refused at once.
pub const BACKOFF: Duration = Duration::from_secs(2);

/// A user's slot.
#[derive(Default)]
pub struct Slot {
    state: Mutex<State>,
    /// Held across the exchange (an `.await`), which a tokio mutex allows: concurrent
    /// first calls of one user wait here for one exchange instead of each making one.
    pub flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    minted: Option<(HeaderValue, Instant)>,
    failed: Option<(Instant, String)>,
}

impl Slot {
    /// The user's token, when it is still fresh.
    pub fn fresh(&self) -> Option<HeaderValue> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (value, until) = state.minted.as_ref()?;
        (Instant::now() < *until).then(|| value.clone())
    }

    /// Why the last exchange failed, while its backoff lasts.
    pub fn backing_off(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (until, reason) = state.failed.as_ref()?;
        (Instant::now() < *until).then(|| reason.clone())
    }

    pub fn store(&self, value: HeaderValue, fresh_for: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.minted = Some((value, Instant::now() + fresh_for));
        state.failed = None;
    }

    pub fn fail(&self, reason: String) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.minted = None;
        state.failed = Some((Instant::now() + BACKOFF, reason));
    }

    /// Whether the slot holds nothing worth keeping.
    fn idle(&self) -> bool {
        self.fresh().is_none() && self.backing_off().is_none()
    }
}

/// One route's slots.
#[derive(Default)]
pub struct Cache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Cache {
    /// The user's slot, made when missing. At the bound, idle slots that no call holds
    /// are dropped first, then any slot no call holds.
    pub fn slot(&self, subject: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(subject) {
            return slot.clone();
        }
        if slots.len() >= MAX_ENTRIES {
            slots.retain(|_, s| Arc::strong_count(s) > 1 || !s.idle());
        }
        if slots.len() >= MAX_ENTRIES {
            let victim = slots
                .iter()
                .find(|(_, s)| Arc::strong_count(s) == 1)
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                slots.remove(&victim);
            }
        }
        let slot = Arc::new(Slot::default());
        slots.insert(subject.to_string(), slot.clone());
        slot
    }

    /// The user's token, only if one is held and fresh; never makes a slot.
    pub fn cached(&self, subject: &str) -> Option<HeaderValue> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(subject)?.fresh()
    }

    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_serves_its_token_until_fresh_for_ends() {
        let cache = Cache::default();
        let slot = cache.slot("alice");
        assert!(slot.fresh().is_none());
        slot.store(
            HeaderValue::from_static("Bearer t"),
            Duration::from_secs(60),
        );
        assert_eq!(
            cache.cached("alice"),
            Some(HeaderValue::from_static("Bearer t"))
        );
        slot.store(HeaderValue::from_static("Bearer t"), Duration::ZERO);
        assert!(cache.cached("alice").is_none());
        slot.fail("down".into());
        assert_eq!(slot.backing_off().as_deref(), Some("down"));
        assert!(cache.cached("bob").is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stays_within_its_bound() {
        let cache = Cache::default();
        for i in 0..MAX_ENTRIES + 10 {
            let slot = cache.slot(&format!("u{i}"));
            slot.store(
                HeaderValue::from_static("Bearer t"),
                Duration::from_secs(60),
            );
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
