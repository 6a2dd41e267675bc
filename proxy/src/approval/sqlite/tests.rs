use super::*;
use crate::approval::store::{StoredRequest, SYSTEM_ACTOR};
use crate::policy::decision::Reason;

fn new(id: &str, key: Option<&str>, created_ms: u64) -> NewApproval {
    NewApproval {
        id: id.into(),
        route: "crm".into(),
        user: Some("u_alice".into()),
        user_claims: Some(serde_json::json!({"sub": "u_alice"})),
        dedup_key: key.map(str::to_string),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        policy_revision: "sha256:0".into(),
        reasons: vec![Reason {
            code: "amount_over_limit".into(),
            message: "too much".into(),
        }],
        request: StoredRequest {
            method: "POST".into(),
            path: "/v1/refunds".into(),
            query: None,
            headers: Vec::new(),
            received_path: "/crm/v1/refunds".into(),
        },
        body: br#"{"amount": 5000}"#.to_vec(),
        summary: serde_json::json!({"body": {"amount": 5000}}),
        created_ms,
        expires_ms: created_ms + 1000,
    }
}

fn decision(to: State, at_ms: u64, actor: &str) -> Transition {
    Transition {
        from: State::Pending,
        to,
        at_ms,
        actor: actor.into(),
        comment: Some("ok".into()),
        response: None,
        failure: None,
    }
}

fn open() -> anyhow::Result<(tempfile::TempDir, SqliteStore)> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("state/approvals.db"))?;
    Ok((dir, store))
}

#[test]
fn parking_the_same_dedup_key_twice_returns_the_first() -> anyhow::Result<()> {
    let (_dir, store) = open()?;
    let first = store.park(&new("a1", Some("k"), 100))?;
    let second = store.park(&new("a2", Some("k"), 200))?;
    let other = store.park(&new("a3", None, 200))?;
    let mut someone_else = new("a5", Some("k"), 200);
    someone_else.user = Some("u_bob".into());
    assert!(
        store.park(&someone_else)?.created,
        "another user's request is their own"
    );
    assert!(first.created && !second.created && other.created);
    assert_eq!(second.approval.id, "a1");
    assert_eq!(store.pending()?, 3);
    // Once it is no longer pending, the same key parks a new approval.
    store.transition("a1", &decision(State::Denied, 300, "bob"))?;
    assert!(store.park(&new("a4", Some("k"), 400))?.created);
    Ok(())
}

#[test]
fn only_one_of_two_decisions_applies() -> anyhow::Result<()> {
    let (_dir, store) = open()?;
    store.park(&new("a1", None, 100))?;
    let approve = store.transition("a1", &decision(State::Approved, 150, "bob"))?;
    let deny = store.transition("a1", &decision(State::Denied, 160, "carol"))?;
    assert!(
        matches!(approve, Transitioned::Done(ref a) if a.state == State::Approved
        && a.decided_by.as_deref() == Some("bob") && a.decided_ms == Some(150))
    );
    assert!(matches!(deny, Transitioned::Conflict(ref a) if a.state == State::Approved));
    let events = store.events("a1")?;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].actor, "bob");
    assert_eq!(events[1].to, State::Approved);
    assert!(matches!(
        store.transition("nope", &decision(State::Denied, 160, "carol"))?,
        Transitioned::NotFound
    ));
    Ok(())
}

#[test]
fn expiry_guards_both_ways() -> anyhow::Result<()> {
    let (_dir, store) = open()?;
    store.park(&new("a1", None, 100))?; // expires at 1100
    let early = Transition::system(State::Pending, State::Expired, 1099);
    assert!(matches!(
        store.transition("a1", &early)?,
        Transitioned::Conflict(_)
    ));
    assert_eq!(store.expired(1099)?, Vec::<String>::new());
    assert_eq!(store.expired(1100)?, vec!["a1".to_string()]);
    // Too late to approve.
    assert!(matches!(
        store.transition("a1", &decision(State::Approved, 1100, "bob"))?,
        Transitioned::Conflict(_)
    ));
    let expire = Transition::system(State::Pending, State::Expired, 1100);
    assert!(
        matches!(store.transition("a1", &expire)?, Transitioned::Done(ref a)
        if a.state == State::Expired && a.finished_ms == Some(1100))
    );
    assert_eq!(store.events("a1")?[1].actor, SYSTEM_ACTOR);
    Ok(())
}

#[test]
fn everything_survives_reopening() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("approvals.db");
    {
        let store = SqliteStore::open(&path)?;
        store.park(&new("a1", Some("k"), 100))?;
        store.transition("a1", &decision(State::Approved, 150, "bob"))?;
        let mut executing = Transition::system(State::Approved, State::Executing, 160);
        executing.failure = None;
        store.transition("a1", &executing)?;
        store.park(&new("a2", None, 170))?;
    }
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.ids_in(State::Executing)?, vec!["a1".to_string()]);
    let a2 = store.get("a2")?.ok_or_else(|| anyhow::anyhow!("a2 lost"))?;
    assert_eq!(a2, new_as_approval("a2", 170));
    let listed = store.list(&Filter {
        state: Some(State::Pending),
        limit: 10,
        ..Filter::default()
    })?;
    assert_eq!(listed.len(), 1);
    Ok(())
}

fn new_as_approval(id: &str, created_ms: u64) -> Approval {
    let n = new(id, None, created_ms);
    Approval {
        id: n.id,
        state: State::Pending,
        route: n.route,
        user: n.user,
        user_claims: n.user_claims,
        dedup_key: n.dedup_key,
        trace_id: n.trace_id,
        policy_revision: n.policy_revision,
        reasons: n.reasons,
        request: n.request,
        body: n.body,
        summary: n.summary,
        created_ms: n.created_ms,
        expires_ms: n.expires_ms,
        decided_by: None,
        decided_ms: None,
        comment: None,
        finished_ms: None,
        response: None,
        failure: None,
    }
}

#[test]
fn the_store_and_its_side_files_are_private() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = open()?;
    // A write in WAL mode: SQLite has created the -wal and -shm files by now.
    store.park(&new("a1", None, 100))?;
    for name in ["approvals.db", "approvals.db-wal", "approvals.db-shm"] {
        let mode = std::fs::metadata(dir.path().join("state").join(name))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    Ok(())
}
