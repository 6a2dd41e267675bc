//! The store's file: created private, opened in WAL mode, and its schema brought up to
//! date by the migrations below.

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
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

/// SQLite's side files: the WAL and its shared-memory index, and the rollback journal
/// used before the switch to WAL.
const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates the file private before SQLite opens it: SQLite gives the side files it creates
/// the main file's mode, so they are private too. Side files left by an earlier run are
/// tightened here, as SQLite reuses them as they are.
pub(super) fn connect(path: &Path) -> anyhow::Result<Connection> {
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
