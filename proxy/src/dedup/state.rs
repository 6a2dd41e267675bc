//! The dedup state machine, as pure functions over one entry. Every store applies these
//! under its own atomicity (a map shard lock, or a Redis compare-and-set), so the
//! semantics are written once.
//!
//! ```text
//! absent ──take──▶ in_flight ──2xx/3xx──▶ completed (replayed) │ not_retained (409)
//!                     │ ├─4xx, nothing sent──▶ absent (released)
//!                     │ └─5xx, timeout, reset, lease lapsed──▶ unknown (409 until the hold ends
//!                     │                                        or an operator releases it)
//! every state ends with its window
//! ```

use super::key::Fingerprint;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::clock::ms;

/// One key's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "as_text")]
    pub fingerprint: Fingerprint,
    /// The holder of the current attempt; only it may finish the entry.
    pub token: u64,
    pub created_ms: u64,
    /// The end of the window: after this the key is free again.
    pub expires_ms: u64,
    #[serde(flatten)]
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// The first request is upstream. If its holder vanishes (a replica crashed), the
    /// lease lapses and the outcome becomes unknown.
    InFlight { lease_until_ms: u64 },
    Completed {
        response: StoredResponse,
        completed_ms: u64,
    },
    /// Completed with a response too large to keep.
    NotRetained { status: u16, completed_ms: u64 },
    /// The upstream may or may not have acted.
    Unknown { reason: String, hold_until_ms: u64 },
}

/// A response kept for replay: status, the headers worth replaying, and the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<StoredHeader>,
    #[serde(with = "as_base64")]
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredHeader {
    pub name: String,
    #[serde(with = "as_base64")]
    pub value: Bytes,
}

impl StoredResponse {
    /// Bytes this response holds in a store.
    pub fn weight(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>()
    }
}

/// One attempt to act on a key.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub key: super::key::Key,
    pub fingerprint: Fingerprint,
    pub window: Duration,
    /// How long the holder may take before its outcome counts as unknown.
    pub lease: Duration,
    /// The upstream deduplicates on the key itself, so an unknown outcome may be retried
    /// with the same key.
    pub retry_unknown: bool,
}

/// What an attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The key is ours: go upstream, then finish with this token.
    Taken {
        token: u64,
    },
    InFlight,
    Completed(StoredResponse),
    NotRetained {
        status: u16,
    },
    Unknown {
        reason: String,
    },
    /// The key is in use for a different intent.
    Mismatch,
    /// The store is full of entries it may not evict.
    Full,
}

/// How the holder's attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Completed(StoredResponse),
    NotRetained {
        status: u16,
    },
    /// `hold: None` keeps the key for the rest of its window.
    Unknown {
        reason: String,
        hold: Option<Duration>,
    },
    /// The upstream did not act: the key is free.
    Release,
}

/// The change a store must make.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put(Entry),
    Delete,
}

/// Whether an entry still binds its key at `now`.
pub fn live(entry: &Entry, now_ms: u64) -> bool {
    now_ms < entry.expires_ms
        && !matches!(entry.state, State::Unknown { hold_until_ms, .. } if now_ms >= hold_until_ms)
}

/// Applies an attempt to the key's current entry.
pub fn begin(
    current: Option<&Entry>,
    attempt: &Attempt,
    now_ms: u64,
    token: u64,
) -> (Begin, Option<Write>) {
    let take = || {
        let entry = Entry {
            fingerprint: attempt.fingerprint,
            token,
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add(ms(attempt.window)),
            state: State::InFlight {
                lease_until_ms: now_ms.saturating_add(ms(attempt.lease)),
            },
        };
        (Begin::Taken { token }, Some(Write::Put(entry)))
    };
    let Some(entry) = current.filter(|e| live(e, now_ms)) else {
        return take();
    };
    if entry.fingerprint != attempt.fingerprint {
        return (Begin::Mismatch, None);
    }
    match &entry.state {
        State::InFlight { lease_until_ms } if now_ms < *lease_until_ms => (Begin::InFlight, None),
        State::InFlight { .. } => {
            if attempt.retry_unknown {
                return take();
            }
            let reason = "lease_lapsed".to_string();
            let lapsed = Entry {
                state: State::Unknown {
                    reason: reason.clone(),
                    hold_until_ms: entry.expires_ms,
                },
                ..entry.clone()
            };
            (Begin::Unknown { reason }, Some(Write::Put(lapsed)))
        }
        State::Completed { response, .. } => (Begin::Completed(response.clone()), None),
        State::NotRetained { status, .. } => (Begin::NotRetained { status: *status }, None),
        State::Unknown { .. } if attempt.retry_unknown => take(),
        State::Unknown { reason, .. } => (
            Begin::Unknown {
                reason: reason.clone(),
            },
            None,
        ),
    }
}

/// Applies the holder's outcome. Nothing changes unless the entry is still in flight
/// under the holder's token (an operator may have released it meanwhile).
pub fn finish(current: Option<&Entry>, token: u64, outcome: Finish, now_ms: u64) -> Option<Write> {
    let entry = current?;
    if entry.token != token || !matches!(entry.state, State::InFlight { .. }) {
        return None;
    }
    let state = match outcome {
        Finish::Release => return Some(Write::Delete),
        Finish::Completed(response) => State::Completed {
            response,
            completed_ms: now_ms,
        },
        Finish::NotRetained { status } => State::NotRetained {
            status,
            completed_ms: now_ms,
        },
        Finish::Unknown { reason, hold } => State::Unknown {
            reason,
            hold_until_ms: hold
                .map_or(entry.expires_ms, |h| now_ms.saturating_add(ms(h)))
                .min(entry.expires_ms),
        },
    };
    Some(Write::Put(Entry {
        state,
        ..entry.clone()
    }))
}

/// What an operator's release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Released,
    NotFound,
    /// A request holding the key is still upstream; releasing would allow a second call.
    InFlight,
}

/// Applies an operator's release.
pub fn release(current: Option<&Entry>, now_ms: u64) -> (Released, Option<Write>) {
    match current.filter(|e| live(e, now_ms)) {
        None => (Released::NotFound, current.map(|_| Write::Delete)),
        Some(Entry {
            state: State::InFlight { lease_until_ms },
            ..
        }) if now_ms < *lease_until_ms => (Released::InFlight, None),
        Some(_) => (Released::Released, Some(Write::Delete)),
    }
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::InFlight { .. } => "in_flight",
            State::Completed { .. } => "completed",
            State::NotRetained { .. } => "not_retained",
            State::Unknown { .. } => "unknown",
        }
    }
}

mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("malformed digest"))
    }
}

mod as_base64 {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}
