//! Paths lastmile reserves on the data port for its own endpoints. Config owns them
//! because it refuses route prefixes under them; the approval poll answers there.

/// The data-port path prefix under which agents poll their approvals and annotate their
/// traces; no route may be configured under it.
pub const DATA_PREFIX: &str = "/_lastmile";
/// [`DATA_PREFIX`] + `/approvals/`: with an approval id appended, an approval's poll URL.
pub const POLL_PATH: &str = "/_lastmile/approvals/";
/// [`DATA_PREFIX`] + `/traces/`: `{trace_id}/annotations` below it takes an agent's
/// annotations of an action (the user's words, the agent's reply).
pub const TRACES_PATH: &str = "/_lastmile/traces/";
