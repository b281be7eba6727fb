//! `relayguard-registry`: the registry commands on their own (the `relayguard` CLI mounts the
//! same commands). Also what the crash-safety test runs and kills.

use clap::Parser;
use relayguard_registry::cli::{DatabaseArgs, RegistryCommand, run};

/// relayguard registry: registrations, findings, agent enrollment, HTTP server.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: RegistryCommand,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(&cli.db.url(), cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
