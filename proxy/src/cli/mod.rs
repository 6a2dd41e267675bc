//! The command line.

pub mod policy;
pub mod replay;
pub mod trace;
pub mod trace_show;

use crate::config::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Runs a command to completion. `Ok(false)` means it ran and found a problem, which
/// the binary turns into a non-zero exit status.
pub fn execute(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Policy { command } => policy::run(command),
        Command::Trace { command } => trace::run(command),
        Command::Run { config } => serve(async move {
            let config = Config::load(&config)?;
            crate::run(config, crate::signal::shutdown()).await
        }),
        Command::Demo { policies } => serve(crate::demo::run(policies, crate::signal::shutdown())),
    }
}

/// Runs a server on a multi-threaded runtime (one worker per core, or
/// `TOKIO_WORKER_THREADS`) until it stops.
fn serve(server: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(server).map(|()| true)
}

#[derive(Debug, Parser)]
#[command(
    name = "lastmile",
    version,
    about = "Policy sidecar for AI agents acting on systems of record"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy with a config file.
    Run {
        /// The YAML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a self-contained demo: a sample CRM upstream and the proxy in front of it.
    Demo {
        /// Policy directory to serve (default: ./policies/demo when present, else the
        /// copy built into the binary).
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Check, test, evaluate and replay policy bundles with the proxy's own engine.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Work with decision trace files.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile a bundle, prove its entry point, and print its revision.
    Check {
        dir: PathBuf,
        /// Library directories loaded with the bundle (as `policies.library_dirs`).
        #[arg(long = "lib")]
        libraries: Vec<PathBuf>,
        #[arg(long, default_value = "data.lastmile.decision")]
        entrypoint: String,
    },
    /// Run every `test_*` rule in the `*_test.rego` files of a bundle, or of every
    /// bundle below a directory; exits non-zero on any failure. Below a directory with
    /// a `lib/` folder, the library is tested alone and loaded with every other bundle.
    Test {
        path: PathBuf,
        /// Library directories loaded with every bundle tested.
        #[arg(long = "lib")]
        libraries: Vec<PathBuf>,
    },
    /// Evaluate a bundle against an input document and print the decision and what
    /// the proxy would do with it.
    Eval {
        dir: PathBuf,
        /// The input document (JSON); `-` reads standard input.
        #[arg(long)]
        input: PathBuf,
        /// Library directories loaded with the bundle.
        #[arg(long = "lib")]
        libraries: Vec<PathBuf>,
        #[arg(long, default_value = "data.lastmile.decision")]
        entrypoint: String,
    },
    /// Re-evaluate the policy inputs a decision trace recorded on a candidate bundle and
    /// print the decisions that change.
    ///
    /// Checks a bundle change against real traffic before it serves. An input the trace
    /// recorded with redacted values (or without its body) is marked "not exact": the
    /// candidate saw "[redacted]" where the policy saw the real value.
    Replay(replay::ReplayArgs),
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Check a trace file's hash chain: no record edited, removed or moved.
    ///
    /// Prints `ok: N records, chain intact`, or the first problem and exits 1. A chain
    /// that starts again (a record whose prev is zeros) is noted, not failed.
    Verify {
        /// The trace file (`trace.output`).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print one action's records from a trace file as the chain of what happened:
    /// the user's words, each tool call with its decision and result, the approvals,
    /// the agent's reply. Exits 1 when the file holds no record of the trace.
    Show {
        /// The trace file (`trace.output`).
        file: PathBuf,
        trace_id: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// How a command prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for a person.
    Text,
    /// One JSON document, for scripts.
    Json,
}
