//! `relayguard`: argument parsing and wiring. The work is done in the library crates.

mod cli;
mod output;
mod queue_cmd;
mod registry_cmd;
mod sweep_cmd;
mod upload;
mod vantage_cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

use relayguard_core::exit;

/// mimalloc, built without transparent huge pages, instead of glibc's malloc. A sweep frees
/// memory on one thread that another allocated (16,000 short connection tasks on tokio's
/// workers, the registry write on SQLite's own thread), and glibc keeps such memory in
/// per-thread arenas it seldom gives back; mimalloc's default huge pages make every region it
/// touches 2 MiB resident. On the campus /16 sweep (docs/benchmarks-campus.md, "Peak memory"),
/// with the results already in a file: 86–88 MiB peak RSS with mimalloc's defaults, 72 MiB
/// without huge pages (glibc: 86 MiB before that change).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relayguard: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let database = cli.database.url();
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Sweep(mut args) => {
                args.rules = cli.rules;
                sweep_cmd::run(*args, &database).await
            }
            Command::Worker(args) => queue_cmd::work(*args, &database, cli.rules).await,
            Command::Sweeps(args) => queue_cmd::sweeps(args, &database).await,
            Command::Schedule(args) => queue_cmd::schedule(args, &database).await,
            Command::Vantage(cmd) => vantage_cmd::run(cmd, &database).await,
            Command::Registry(cmd) => {
                // The registry server also fires scheduled sweeps (PostgreSQL only).
                if matches!(*cmd, registry_cmd::RegistryCommand::Serve(_)) {
                    queue_cmd::schedule::spawn_for_serve(&database).await?;
                }
                registry_cmd::run(&database, cli.rules.as_deref(), *cmd)
                    .await
                    .map(|()| 0)
            }
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("relayguard: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
