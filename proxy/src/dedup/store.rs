//! The interface every dedup store offers. Each operation is atomic per key: two
//! attempts on one key never both get [`Begin::Taken`].

use super::key::Key;
use super::state::{Attempt, Begin, Entry, Finish, Released};
use std::future::Future;
use std::pin::Pin;
use tokio::time::Instant;

/// A store operation in progress.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The store could not answer; callers fail closed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("dedup store unavailable: {0}")]
pub struct StoreError(pub String);

pub trait DedupStore: Send + Sync + 'static {
    /// Looks the key up and, if it is free, takes it for this attempt.
    fn begin<'a>(&'a self, attempt: &'a Attempt) -> StoreFuture<'a, Begin>;

    /// Records how the holder's attempt ended.
    fn finish<'a>(&'a self, key: &'a Key, token: u64, outcome: Finish) -> StoreFuture<'a, ()>;

    /// Resolves when the key may have left the in-flight state, or at `deadline`;
    /// callers then look again with [`DedupStore::begin`]. `round` counts the caller's
    /// previous waits, so a store that polls can back off.
    fn changed<'a>(
        &'a self,
        key: &'a Key,
        deadline: Instant,
        round: u32,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    /// The key's entry, for operators.
    fn get<'a>(&'a self, key: &'a Key) -> StoreFuture<'a, Option<Entry>>;

    /// An operator's release: frees a completed or unknown key.
    fn release<'a>(&'a self, key: &'a Key) -> StoreFuture<'a, Released>;

    /// How many entries the store holds.
    fn entries(&self) -> StoreFuture<'_, usize>;
}
