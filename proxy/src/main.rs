use clap::Parser;
use lastmile::cli::{Cli, Command};
use lastmile::config::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    lastmile::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lastmile: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => {
                let config = Config::load(&config)?;
                lastmile::run(config, lastmile::signal::shutdown()).await
            }
            Command::Demo { policies } => {
                lastmile::demo::run(policies, lastmile::signal::shutdown()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lastmile: {e:#}");
            ExitCode::FAILURE
        }
    }
}
