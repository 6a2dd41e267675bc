//! The default approval store: one SQLite file (WAL mode), schema migrations in code.
//!
//! Each transition is a single `UPDATE ... WHERE id = ? AND state = ?` inside an
//! immediate transaction together with its event row, so exactly one of two racing
//! writers (threads or processes sharing the file) sees its update applied.

use super::store::{
    Approval, ApprovalStore, Event, Failure, Filter, NewApproval, Parked, State, StoreError,
    StoredRequest, Transition, Transitioned,
};
use crate::dedup::state::StoredResponse;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    route TEXT NOT NULL,
    user_sub TEXT,
    user_claims TEXT,
    dedup_key TEXT,
    trace_id TEXT NOT NULL,
    policy_revision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    request TEXT NOT NULL,
    body BLOB NOT NULL,
    summary TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    decided_by TEXT,
    decided_ms INTEGER,
    comment TEXT,
    finished_ms INTEGER,
    response TEXT,
    failure TEXT
);
CREATE INDEX approvals_state ON approvals (state, expires_ms);
CREATE INDEX approvals_dedup ON approvals (dedup_key, state);
CREATE INDEX approvals_created ON approvals (created_ms);
CREATE TABLE approval_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    comment TEXT
);
CREATE INDEX approval_events_id ON approval_events (approval_id, seq);
"#];

const COLUMNS: &str = "id, state, route, user_sub, user_claims, dedup_key, trace_id, \
    policy_revision, reasons, request, body, summary, created_ms, expires_ms, decided_by, \
    decided_ms, comment, finished_ms, response, failure";

/// Approvals in a SQLite file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

fn fail(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// SQLite integers are signed; times and sizes here never come near the limit.
fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (creating if needed) the file and brings its schema up to date. The file
    /// and SQLite's side files are readable by lastmile's user only (they hold whole
    /// parked requests); an error names the store and its path.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        use anyhow::Context;
        let connection =
            connect(path).with_context(|| format!("approvals store {}", path.display()))?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // A poisoned lock only means another thread panicked mid-call; SQLite's own
        // transactions keep the file consistent, so the connection is still usable.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut connection).map_err(fail)
    }
}

/// SQLite's side files: the WAL and its shared-memory index, and the rollback journal
/// used before the switch to WAL.
const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates the file private before SQLite opens it: SQLite gives the side files it creates
/// the main file's mode, so they are private too. Side files left by an earlier run are
/// tightened here, as SQLite reuses them as they are.
fn connect(path: &Path) -> anyhow::Result<Connection> {
    use anyhow::Context;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating its directory {}", parent.display()))?;
    }
    crate::private_file::ensure(path).context("creating the file")?;
    for suffix in SIDE_FILES {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = Path::new(&side);
        crate::private_file::tighten_existing(side)
            .with_context(|| format!("tightening {}", side.display()))?;
    }
    let mut connection = Connection::open(path).context("opening the database")?;
    // WAL lets readers (the page, polls) proceed while a transition commits;
    // FULL sync makes a parked approval survive a power cut once the agent has its 202.
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .context("switching to WAL mode")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(Duration::from_secs(5))?;
    migrate(&mut connection).context("migrating the schema")?;
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for sql in MIGRATIONS.iter().skip(applied) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
    tx.commit()
}

fn json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn parse<T: serde::de::DeserializeOwned>(index: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse_opt<T: serde::de::DeserializeOwned>(
    index: usize,
    text: Option<String>,
) -> rusqlite::Result<Option<T>> {
    text.map(|t| parse(index, &t)).transpose()
}

fn state(index: usize, text: &str) -> rusqlite::Result<State> {
    State::parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown approval state {text:?}").into(),
        )
    })
}

fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn approval(row: &Row<'_>) -> rusqlite::Result<Approval> {
    let request: String = row.get(9)?;
    Ok(Approval {
        id: row.get(0)?,
        state: state(1, &row.get::<_, String>(1)?)?,
        route: row.get(2)?,
        user: row.get(3)?,
        user_claims: parse_opt(4, row.get(4)?)?,
        dedup_key: row.get(5)?,
        trace_id: row.get(6)?,
        policy_revision: row.get(7)?,
        reasons: parse(8, &row.get::<_, String>(8)?)?,
        request: parse::<StoredRequest>(9, &request)?,
        body: row.get(10)?,
        summary: parse(11, &row.get::<_, String>(11)?)?,
        created_ms: ms(row.get(12)?),
        expires_ms: ms(row.get(13)?),
        decided_by: row.get(14)?,
        decided_ms: row.get::<_, Option<i64>>(15)?.map(ms),
        comment: row.get(16)?,
        finished_ms: row.get::<_, Option<i64>>(17)?.map(ms),
        response: parse_opt::<StoredResponse>(18, row.get(18)?)?,
        failure: parse_opt::<Failure>(19, row.get(19)?)?,
    })
}

fn get(connection: &Connection, id: &str) -> rusqlite::Result<Option<Approval>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
            [id],
            approval,
        )
        .optional()
}

fn record_event(
    connection: &Connection,
    id: &str,
    at_ms: u64,
    actor: &str,
    from: Option<State>,
    to: State,
    comment: Option<&str>,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO approval_events (approval_id, at_ms, actor, from_state, to_state, comment) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            int(at_ms),
            actor,
            from.map(State::as_str),
            to.as_str(),
            comment
        ],
    )?;
    Ok(())
}

impl ApprovalStore for SqliteStore {
    fn park(&self, new: &NewApproval) -> Result<Parked, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Per user even for an intent the policy shares across users: each user must
            // be able to poll their own approval (the dedup window still lets the
            // upstream act once).
            if let Some(key) = &new.dedup_key {
                let existing = tx
                    .query_row(
                        &format!(
                            "SELECT {COLUMNS} FROM approvals WHERE dedup_key = ?1 \
                             AND user_sub IS ?3 AND state = 'pending' AND expires_ms > ?2 \
                             ORDER BY created_ms LIMIT 1"
                        ),
                        params![key, int(new.created_ms), new.user],
                        approval,
                    )
                    .optional()?;
                if let Some(approval) = existing {
                    return Ok(Parked {
                        approval,
                        created: false,
                    });
                }
            }
            tx.execute(
                &format!(
                    "INSERT INTO approvals ({COLUMNS}) VALUES (?1, 'pending', ?2, ?3, ?4, ?5, \
                     ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, NULL, NULL, NULL, NULL, NULL)"
                ),
                params![
                    new.id,
                    new.route,
                    new.user,
                    new.user_claims.as_ref().map(json).transpose()?,
                    new.dedup_key,
                    new.trace_id,
                    new.policy_revision,
                    json(&new.reasons)?,
                    json(&new.request)?,
                    new.body,
                    json(&new.summary)?,
                    int(new.created_ms),
                    int(new.expires_ms),
                ],
            )?;
            let actor = new.user.as_deref().unwrap_or("anonymous");
            record_event(
                &tx,
                &new.id,
                new.created_ms,
                actor,
                None,
                State::Pending,
                None,
            )?;
            let approval = get(&tx, &new.id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            tx.commit()?;
            Ok(Parked {
                approval,
                created: true,
            })
        })
    }

    fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.with(|connection| get(connection, id))
    }

    fn list(&self, filter: &Filter) -> Result<Vec<Approval>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM approvals \
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR route = ?2) \
                 AND (?3 IS NULL OR user_sub = ?3) \
                 ORDER BY created_ms DESC, id LIMIT ?4"
            ))?;
            let rows = statement.query_map(
                params![
                    filter.state.map(State::as_str),
                    filter.route,
                    filter.user,
                    int(filter.limit as u64)
                ],
                approval,
            )?;
            rows.collect()
        })
    }

    fn transition(&self, id: &str, t: &Transition) -> Result<Transitioned, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Leaving `pending` by a decision must happen before expiry; expiring, after.
            let time_guard = match (t.from, t.to) {
                (State::Pending, State::Expired) => "AND expires_ms <= ?3",
                (State::Pending, _) => "AND expires_ms > ?3",
                _ => "",
            };
            let decision = t.from == State::Pending;
            let finished = t.to.is_final();
            let changed = tx.execute(
                &format!(
                    "UPDATE approvals SET state = ?4, \
                     decided_by = CASE WHEN ?5 THEN ?6 ELSE decided_by END, \
                     decided_ms = CASE WHEN ?5 THEN ?3 ELSE decided_ms END, \
                     comment = CASE WHEN ?5 THEN ?7 ELSE comment END, \
                     finished_ms = CASE WHEN ?8 THEN ?3 ELSE finished_ms END, \
                     response = COALESCE(?9, response), failure = COALESCE(?10, failure) \
                     WHERE id = ?1 AND state = ?2 {time_guard}"
                ),
                params![
                    id,
                    t.from.as_str(),
                    int(t.at_ms),
                    t.to.as_str(),
                    decision,
                    t.actor,
                    t.comment,
                    finished,
                    t.response.as_ref().map(json).transpose()?,
                    t.failure.as_ref().map(json).transpose()?,
                ],
            )?;
            if changed == 1 {
                record_event(
                    &tx,
                    id,
                    t.at_ms,
                    &t.actor,
                    Some(t.from),
                    t.to,
                    t.comment.as_deref(),
                )?;
            }
            let current = get(&tx, id)?;
            tx.commit()?;
            Ok(match current {
                None => Transitioned::NotFound,
                Some(approval) if changed == 1 => Transitioned::Done(approval),
                Some(approval) => Transitioned::Conflict(approval),
            })
        })
    }

    fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT at_ms, actor, from_state, to_state, comment FROM approval_events \
                 WHERE approval_id = ?1 ORDER BY seq",
            )?;
            let rows = statement.query_map([id], |row| {
                Ok(Event {
                    at_ms: ms(row.get(0)?),
                    actor: row.get(1)?,
                    from: row
                        .get::<_, Option<String>>(2)?
                        .map(|s| state(2, &s))
                        .transpose()?,
                    to: state(3, &row.get::<_, String>(3)?)?,
                    comment: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    fn expired(&self, now_ms: u64) -> Result<Vec<String>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id FROM approvals WHERE state = 'pending' AND expires_ms <= ?1",
            )?;
            let rows = statement.query_map([int(now_ms)], |row| row.get(0))?;
            rows.collect()
        })
    }

    fn ids_in(&self, state: State) -> Result<Vec<String>, StoreError> {
        self.with(|connection| {
            let mut statement =
                connection.prepare_cached("SELECT id FROM approvals WHERE state = ?1")?;
            let rows = statement.query_map([state.as_str()], |row| row.get(0))?;
            rows.collect()
        })
    }

    fn pending(&self) -> Result<u64, StoreError> {
        self.with(|connection| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM approvals WHERE state = 'pending'",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .map(ms)
        })
    }
}

#[cfg(test)]
mod tests;
