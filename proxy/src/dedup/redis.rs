//! The shared store: one dedup window for every replica of an agent, kept in Redis.
//!
//! Each key is one Redis string holding the entry as JSON, with a TTL a little past its
//! window. Transitions are compare-and-set: read the entry, apply the shared state
//! machine, then write only if the entry is still what was read (a Lua script, so the
//! check and the write are one atomic step on the server). Two replicas racing for a
//! key both run the script; exactly one write lands, and the loser looks again.
//!
//! Two sorted sets bound the store: every live entry by expiry, and completed entries
//! by completion time (the eviction order). Scripts touch keys they compute from the
//! prefix, so this needs a single Redis node (or a primary), not Redis Cluster.
//!
//! While Redis is unreachable every operation fails, and callers refuse the request:
//! no action is forwarded without the guarantee. The connection manager reconnects in
//! the background once Redis is back.

use super::clock::{ms, Clock};
use super::key::Key;
use super::state::{self, Attempt, Begin, Entry, Finish, Released, State, Write};
use super::store::{DedupStore, StoreError, StoreFuture};
use crate::config::RedisSettings;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Entries outlive their window by this much in Redis, so a replica whose clock runs a
/// little behind still sees them.
const TTL_SLACK: Duration = Duration::from_secs(60);
/// A waiting duplicate looks at an in-flight key again after 10 ms, then backs off to
/// this, so a burst of duplicates does not flood Redis.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(160);
/// Lost compare-and-set races tolerated before an operation gives up.
const MAX_RACES: usize = 16;

/// KEYS: entry, index, completed. ARGV: expected value ('' = absent), new value
/// ('' = delete), TTL ms, member, index score (expiry), completed score ('' = not completed).
const CAS: &str = r#"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[4])
  return 1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
if ARGV[6] == '' then
  redis.call('ZREM', KEYS[3], ARGV[4])
else
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
end
return 1
"#;

/// Makes room for one more entry: drops expired entries from the index and, when the
/// store is full, evicts the oldest completed entry. Shared by the scripts below; with
/// KEYS[2] the index, KEYS[3] the completed set. Returns false when nothing may be evicted.
const MAKE_ROOM_FN: &str = r#"
local function make_room(now, max_entries, entry_prefix)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) < tonumber(max_entries) then return true end
  while true do
    local oldest = redis.call('ZPOPMIN', KEYS[3])
    if #oldest == 0 then return false end
    local member = oldest[1]
    local raw = redis.call('GET', entry_prefix .. member)
    if raw then
      local state = cjson.decode(raw)['state']
      if state == 'completed' or state == 'not_retained' then
        redis.call('DEL', entry_prefix .. member)
        redis.call('ZREM', KEYS[2], member)
        return true
      end
    else
      redis.call('ZREM', KEYS[2], member)
      return true
    end
  end
end
"#;

/// The common first step in one round trip: the key's current entry, or, when it has
/// none, the key taken for this attempt. KEYS: entry, index, completed. ARGV: new
/// entry, TTL ms, member, index score (expiry), now ms, max entries, entry key prefix.
/// Returns {1, ''} taken, {0, current} when an entry exists, {2, ''} when full.
const TAKE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
if not make_room(ARGV[5], ARGV[6], ARGV[7]) then return {2, ''} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return {1, ''}
"#;

/// KEYS: entry, index, completed. ARGV: now ms, max entries, entry key prefix. 1 when
/// there is room for one more entry, 0 when nothing may be evicted.
const MAKE_ROOM: &str = r#"
if make_room(ARGV[1], ARGV[2], ARGV[3]) then return 1 end
return 0
"#;

/// What the one-round-trip first step found.
enum Taking {
    Taken(Begin),
    Full,
    Exists(String),
}

pub struct RedisStore {
    connection: ConnectionManager,
    entry_prefix: String,
    index: String,
    completed: String,
    max_entries: usize,
    cas: Script,
    take: Script,
    make_room: Script,
    clock: Arc<dyn Clock>,
}

impl RedisStore {
    /// Prepares the store without connecting: a Redis that is down at start-up only
    /// means refusals until it comes up.
    pub fn new(settings: &RedisSettings, clock: Arc<dyn Clock>) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| StoreError(format!("invalid Redis URL ({})", e.category())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError(error_text(&e)))?;
        let prefix = &settings.key_prefix;
        Ok(RedisStore {
            connection,
            entry_prefix: format!("{prefix}e:"),
            index: format!("{prefix}index"),
            completed: format!("{prefix}completed"),
            max_entries: settings.max_entries,
            cas: Script::new(CAS),
            take: Script::new(&format!("{MAKE_ROOM_FN}{TAKE}")),
            make_room: Script::new(&format!("{MAKE_ROOM_FN}{MAKE_ROOM}")),
            clock,
        })
    }

    fn entry_key(&self, key: &Key) -> String {
        format!("{}{key}", self.entry_prefix)
    }

    async fn read(&self, key: &Key) -> Result<(Option<String>, Option<Entry>), StoreError> {
        let mut connection = self.connection.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.entry_key(key))
            .query_async(&mut connection)
            .await
            .map_err(|e| StoreError(error_text(&e)))?;
        let entry = raw
            .as_deref()
            .map(serde_json::from_str::<Entry>)
            .transpose()
            .map_err(|e| StoreError(format!("unreadable dedup entry: {e}")))?;
        Ok((raw, entry))
    }

    /// Writes `write` if the entry still reads `expected`; false when another writer
    /// got there first.
    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        write: &Write,
        now: u64,
    ) -> Result<bool, StoreError> {
        let (value, ttl, expiry, completed) = match write {
            Write::Delete => (String::new(), 0, 0, String::new()),
            Write::Put(entry) => {
                let (value, ttl) = encode(entry, now)?;
                let completed = match &entry.state {
                    State::Completed { completed_ms, .. }
                    | State::NotRetained { completed_ms, .. } => completed_ms.to_string(),
                    _ => String::new(),
                };
                (value, ttl, entry.expires_ms, completed)
            }
        };
        let mut connection = self.connection.clone();
        let written: i64 = self
            .cas
            .key(self.entry_key(key))
            .key(&self.index)
            .key(&self.completed)
            .arg(expected.unwrap_or(""))
            .arg(value)
            .arg(ttl)
            .arg(key.to_string())
            .arg(expiry)
            .arg(completed)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| StoreError(error_text(&e)))?;
        Ok(written == 1)
    }

    async fn has_room(&self, key: &Key, now: u64) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let room: i64 = self
            .make_room
            .key(self.entry_key(key))
            .key(&self.index)
            .key(&self.completed)
            .arg(now)
            .arg(self.max_entries)
            .arg(&self.entry_prefix)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| StoreError(error_text(&e)))?;
        Ok(room == 1)
    }

    /// Takes the key if it has no entry; otherwise returns the entry as stored.
    async fn take_if_absent(
        &self,
        attempt: &Attempt,
        token: u64,
        now: u64,
    ) -> Result<Taking, StoreError> {
        let (begun, write) = state::begin(None, attempt, now, token);
        let Some(Write::Put(entry)) = write else {
            return Err(StoreError("a new key produced no entry".into()));
        };
        let (value, ttl) = encode(&entry, now)?;
        let mut connection = self.connection.clone();
        let (outcome, current): (i64, String) = self
            .take
            .key(self.entry_key(&attempt.key))
            .key(&self.index)
            .key(&self.completed)
            .arg(value)
            .arg(ttl)
            .arg(attempt.key.to_string())
            .arg(entry.expires_ms)
            .arg(now)
            .arg(self.max_entries)
            .arg(&self.entry_prefix)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| StoreError(error_text(&e)))?;
        Ok(match outcome {
            1 => Taking::Taken(begun),
            2 => Taking::Full,
            _ => Taking::Exists(current),
        })
    }

    async fn begin_now(&self, attempt: &Attempt) -> Result<Begin, StoreError> {
        let token = super::new_token();
        for _ in 0..MAX_RACES {
            let now = self.clock.now_ms();
            let raw = match self.take_if_absent(attempt, token, now).await? {
                Taking::Taken(begun) => return Ok(begun),
                Taking::Full => return Ok(Begin::Full),
                Taking::Exists(raw) => raw,
            };
            let current: Entry = serde_json::from_str(&raw)
                .map_err(|e| StoreError(format!("unreadable dedup entry: {e}")))?;
            let (raw, current) = (Some(raw), Some(current));
            let (begun, write) = state::begin(current.as_ref(), attempt, now, token);
            let Some(write) = write else {
                return Ok(begun);
            };
            let new_key = !current.as_ref().is_some_and(|e| state::live(e, now));
            if new_key && !self.has_room(&attempt.key, now).await? {
                return Ok(Begin::Full);
            }
            if self
                .compare_and_set(&attempt.key, raw.as_deref(), &write, now)
                .await?
            {
                return Ok(begun);
            }
        }
        Err(StoreError("too much contention on one key".into()))
    }

    async fn finish_now(&self, key: &Key, token: u64, outcome: Finish) -> Result<(), StoreError> {
        for _ in 0..MAX_RACES {
            let now = self.clock.now_ms();
            let (raw, current) = self.read(key).await?;
            let Some(write) = state::finish(current.as_ref(), token, outcome.clone(), now) else {
                return Ok(());
            };
            if self
                .compare_and_set(key, raw.as_deref(), &write, now)
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError("too much contention on one key".into()))
    }

    async fn release_now(&self, key: &Key) -> Result<Released, StoreError> {
        for _ in 0..MAX_RACES {
            let now = self.clock.now_ms();
            let (raw, current) = self.read(key).await?;
            let (released, write) = state::release(current.as_ref(), now);
            let Some(write) = write else {
                return Ok(released);
            };
            if self
                .compare_and_set(key, raw.as_deref(), &write, now)
                .await?
            {
                return Ok(released);
            }
        }
        Err(StoreError("too much contention on one key".into()))
    }
}

impl DedupStore for RedisStore {
    fn begin<'a>(&'a self, attempt: &'a Attempt) -> StoreFuture<'a, Begin> {
        Box::pin(self.begin_now(attempt))
    }

    fn finish<'a>(&'a self, key: &'a Key, token: u64, outcome: Finish) -> StoreFuture<'a, ()> {
        Box::pin(self.finish_now(key, token, outcome))
    }

    fn changed<'a>(
        &'a self,
        _key: &'a Key,
        deadline: Instant,
        round: u32,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let interval = Duration::from_millis(10)
            .saturating_mul(1 << round.min(4))
            .min(MAX_POLL_INTERVAL);
        let wake = (Instant::now() + interval).min(deadline);
        Box::pin(tokio::time::sleep_until(wake))
    }

    fn get<'a>(&'a self, key: &'a Key) -> StoreFuture<'a, Option<Entry>> {
        Box::pin(async move {
            let now = self.clock.now_ms();
            let (_, entry) = self.read(key).await?;
            Ok(entry.filter(|e| state::live(e, now)))
        })
    }

    fn release<'a>(&'a self, key: &'a Key) -> StoreFuture<'a, Released> {
        Box::pin(self.release_now(key))
    }

    fn entries(&self) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("ZCARD")
                .arg(&self.index)
                .query_async(&mut connection)
                .await
                .map_err(|e| StoreError(error_text(&e)))
        })
    }
}

/// An entry as stored, and its TTL in milliseconds: the rest of its window plus slack.
fn encode(entry: &Entry, now: u64) -> Result<(String, u64), StoreError> {
    let value = serde_json::to_string(entry)
        .map_err(|e| StoreError(format!("encoding a dedup entry: {e}")))?;
    let ttl = entry
        .expires_ms
        .saturating_sub(now)
        .saturating_add(ms(TTL_SLACK));
    Ok((value, ttl))
}

/// A Redis error without anything that could carry the URL or password.
fn error_text(e: &redis::RedisError) -> String {
    match e.detail() {
        Some(detail) => format!("Redis {}: {detail}", e.category()),
        None => format!("Redis {}", e.category()),
    }
}
