//! The dedup store's settings: which store holds dedup windows, and how to reach Redis
//! when it is shared between replicas.

use super::raw::{RawDedup, RawStoreKind};
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// The validated `dedup:` section.
#[derive(Debug, Clone)]
pub struct DedupConfig {
    pub store: DedupStoreConfig,
    pub max_entries: usize,
    pub max_stored_bytes: usize,
}

/// Which store holds dedup windows.
#[derive(Debug, Clone)]
pub enum DedupStoreConfig {
    /// In this process: windows do not survive a restart nor span replicas.
    Memory,
    /// Shared through Redis, so replicas see one another's requests.
    Redis(RedisSettings),
}

/// Where and how to reach Redis.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port/db`; a secret, never logged.
    pub url: String,
    pub key_prefix: String,
    /// Bound on each command and connection attempt.
    pub timeout: Duration,
    pub max_entries: usize,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

/// Validates the `dedup:` section: a positive entry bound, and Redis settings exactly
/// when the store is Redis.
pub(super) fn validate(raw: RawDedup) -> Result<DedupConfig> {
    if raw.max_entries == 0 {
        bail!("dedup.max_entries must be greater than zero");
    }
    let store = match (raw.store, raw.redis) {
        (RawStoreKind::Memory, None) => DedupStoreConfig::Memory,
        (RawStoreKind::Memory, Some(_)) => {
            bail!("dedup.redis is set but dedup.store is memory; set store: redis to use it")
        }
        (RawStoreKind::Redis, None) => {
            bail!("dedup.store is redis: set dedup.redis.url or url_env")
        }
        (RawStoreKind::Redis, Some(redis)) => {
            let url = match (redis.url, redis.url_env) {
                (Some(url), None) => url,
                (None, Some(var)) => std::env::var(&var).with_context(|| {
                    format!("dedup.redis.url_env: environment variable {var} is not set")
                })?,
                _ => bail!("dedup.redis: set exactly one of url or url_env"),
            };
            if !url.starts_with("redis://") {
                bail!("dedup.redis.url must start with redis://");
            }
            if redis.timeout_ms == 0 {
                bail!("dedup.redis.timeout_ms must be greater than zero");
            }
            DedupStoreConfig::Redis(RedisSettings {
                url,
                key_prefix: redis.key_prefix,
                timeout: Duration::from_millis(redis.timeout_ms),
                max_entries: raw.max_entries,
            })
        }
    };
    Ok(DedupConfig {
        store,
        max_entries: raw.max_entries,
        max_stored_bytes: raw.max_stored_bytes,
    })
}
