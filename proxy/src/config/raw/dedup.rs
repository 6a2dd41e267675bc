//! `dedup:` as written: which store holds dedup windows and how much it may hold.

use serde::Deserialize;

/// Where dedup windows are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDedup {
    #[serde(default)]
    pub store: RawStoreKind,
    #[serde(default = "default_dedup_max_entries")]
    pub max_entries: usize,
    #[serde(default = "default_dedup_max_stored_bytes")]
    pub max_stored_bytes: usize,
    #[serde(default)]
    pub redis: Option<RawRedis>,
}

impl Default for RawDedup {
    fn default() -> Self {
        Self {
            store: RawStoreKind::Memory,
            max_entries: default_dedup_max_entries(),
            max_stored_bytes: default_dedup_max_stored_bytes(),
            redis: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawStoreKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_dedup_max_entries() -> usize {
    100_000
}
fn default_dedup_max_stored_bytes() -> usize {
    64 * 1024 * 1024
}
fn default_redis_prefix() -> String {
    "lastmile:dedup:".into()
}
fn default_redis_timeout_ms() -> u64 {
    500
}
