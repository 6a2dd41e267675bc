//! End-to-end tests: the real `lastmile` binary, started per test with its own config,
//! policy directory, secrets and ports, between an HTTP client and a recording upstream.

mod harness;

mod action_trace;
mod admin_credentials;
mod approvals;
mod approvals_page;
mod approvals_safety;
mod chart;
mod credentials_user;
mod decision_logs;
mod dedup;
mod dedup_store;
mod demo;
mod dry_run;
mod failures;
mod faults;
mod form_bodies;
mod forwarding;
mod hostile;
mod identity;
mod library;
mod lifecycle;
mod observability;
mod otlp;
mod policy_cli;
mod policy_replay;
mod refusals;
mod reload;
mod routing;
mod soak;
mod startup;
mod stripe_sdk;
mod trace_chain;
