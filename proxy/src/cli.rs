//! The command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
}
