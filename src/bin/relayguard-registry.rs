//! `relayguard-registry`: the registry commands on their own (the `relayguard` CLI mounts the
//! same commands). Also what the crash-safety test runs and kills.

// The same command line as `relayguard`'s registry commands, compiled into this binary too.
#[path = "../registry_cmd/mod.rs"]
mod registry_cmd;

use std::path::PathBuf;

use clap::Parser;
use registry_cmd::{DatabaseArgs, RegistryCommand, run};
use relayguard_core::exit;

/// relayguard registry: registrations, findings, agent enrollment, HTTP server.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Directory with rule files overriding the built-in ones; the registry takes the
    /// severities of the findings it derives from its severities.yaml.
    #[arg(long, global = true, value_name = "DIR")]
    rules: Option<PathBuf>,
    #[command(subcommand)]
    command: RegistryCommand,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(&cli.db.url(), cli.rules.as_deref(), cli.command).await {
        Ok(()) => std::process::ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(exit::ERROR)
        }
    }
}
