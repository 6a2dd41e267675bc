//! Between rows and values: the column list, JSON and state columns, and the
//! statements every transition shares (reading an approval, recording its event).

use crate::approval::store::{Approval, Event, Failure, State, StoredRequest};
use crate::dedup::state::StoredResponse;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Every column of `approvals`, in the order [`approval`] reads them.
pub(super) const COLUMNS: &str = "id, state, route, user_sub, user_claims, dedup_key, trace_id, \
    policy_revision, reasons, request, body, summary, created_ms, expires_ms, decided_by, \
    decided_ms, comment, finished_ms, response, failure";

/// SQLite integers are signed; times and sizes here never come near the limit.
pub(super) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
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

pub(super) fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(super) fn approval(row: &Row<'_>) -> rusqlite::Result<Approval> {
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

pub(super) fn get(connection: &Connection, id: &str) -> rusqlite::Result<Option<Approval>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
            [id],
            approval,
        )
        .optional()
}

pub(super) fn record_event(
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

/// One `approval_events` row, as `SELECT at_ms, actor, from_state, to_state, comment`.
pub(super) fn event(row: &Row<'_>) -> rusqlite::Result<Event> {
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
}
