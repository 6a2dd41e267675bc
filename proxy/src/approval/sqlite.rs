//! The default approval store: one SQLite file (WAL mode), schema migrations in code
//! ([`schema`]), rows mapped to approvals in [`rows`].
//!
//! Each transition is a single `UPDATE ... WHERE id = ? AND state = ?` inside an
//! immediate transaction together with its event row, so exactly one of two racing
//! writers (threads or processes sharing the file) sees its update applied.

mod rows;
mod schema;

use super::store::{
    Approval, ApprovalStore, Event, Filter, NewApproval, Parked, State, StoreError, Transition,
    Transitioned,
};
use rows::{approval, get, int, json, ms, record_event, COLUMNS};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use schema::connect;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// Approvals in a SQLite file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

fn fail(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
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

/// The pending approval a new one duplicates, if any: the same dedup key, still
/// pending and unexpired. Per user even for an intent the policy shares across users:
/// each user must be able to poll their own approval (the dedup window still lets the
/// upstream act once).
fn pending_duplicate(
    connection: &Connection,
    new: &NewApproval,
) -> rusqlite::Result<Option<Approval>> {
    let Some(key) = &new.dedup_key else {
        return Ok(None);
    };
    connection
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM approvals WHERE dedup_key = ?1 \
                 AND user_sub IS ?3 AND state = 'pending' AND expires_ms > ?2 \
                 ORDER BY created_ms LIMIT 1"
            ),
            params![key, int(new.created_ms), new.user],
            approval,
        )
        .optional()
}

/// Writes a new approval as `pending`, with the event that says who parked it.
fn insert_pending(connection: &Connection, new: &NewApproval) -> rusqlite::Result<()> {
    connection.execute(
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
        connection,
        &new.id,
        new.created_ms,
        actor,
        None,
        State::Pending,
        None,
    )
}

impl ApprovalStore for SqliteStore {
    fn park(&self, new: &NewApproval) -> Result<Parked, StoreError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(approval) = pending_duplicate(&tx, new)? {
                return Ok(Parked {
                    approval,
                    created: false,
                });
            }
            insert_pending(&tx, new)?;
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
            let rows = statement.query_map([id], rows::event)?;
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
