//! `relayguard-agent`: argument parsing and wiring only; the work lives in the library.
//!
//! Exit codes: 0 = fine (check: no MTA enabled, running or listening); 1 = error;
//! 2 = usage error; 3 = check found an MTA enabled at boot, running or listening;
//! 4 = refused (e.g. host role is not non-mail).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use relayguard_agent::harden::{Mode, Role, apply, plan};
use relayguard_agent::output;
use relayguard_agent::root::Root;
use relayguard_agent::{AgentError, check, report, revert};

#[derive(Parser)]
#[command(
    name = "relayguard-agent",
    version,
    about = "Find MTAs enabled at boot or listening; disable them reversibly on non-mail hosts"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Disable,
    LoopbackOnly,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    NonMail,
    Mail,
}

#[derive(Subcommand)]
enum Cmd {
    /// Report installed, boot-enabled, running and listening MTAs with proof.
    Check {
        /// Inspect this directory as `/` (mounted image, fixture); skips live facts.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: FormatArg,
    },
    /// Disable (or restrict to loopback) every MTA on a non-mail host, journaled and reversible.
    Harden {
        /// Operate on this directory as `/`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Print the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// disable: stop MTAs starting at boot; loopback-only: keep local mail, no network listener.
        #[arg(long, value_enum, default_value = "disable")]
        mode: ModeArg,
        /// The host's role (until the registry client exists, it must be given).
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Undo every change recorded in the journal, byte for byte.
    Revert {
        /// Operate on this directory as `/`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Write the versioned JSON report (HTTPS posting to the registry is not implemented yet).
    Report {
        /// Inspect this directory as `/`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Write the report to this file (atomically).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also queue the report in this spool directory for a later upload.
        #[arg(long)]
        spool_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(AgentError::Refused(m)) => {
            eprintln!("relayguard-agent: refused: {m}");
            ExitCode::from(4)
        }
        Err(e) => {
            eprintln!("relayguard-agent: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<u8, AgentError> {
    match cli.cmd {
        Cmd::Check { root, format } => {
            let (result, _) = check(&Root::new(root));
            match format {
                FormatArg::Table => print!("{}", output::table(&result)),
                FormatArg::Json => println!("{}", serde_json::to_string_pretty(&result)?),
            }
            Ok(if output::needs_attention(&result) {
                3
            } else {
                0
            })
        }
        Cmd::Harden {
            root,
            dry_run,
            mode,
            role,
        } => {
            let role = match role {
                Some(RoleArg::NonMail) => Role::NonMail,
                Some(RoleArg::Mail) => Role::Mail,
                None => {
                    return Err(AgentError::Refused(
                        "host role unknown: the registry client is not implemented yet; pass --role non-mail on hosts that must not run a mail server".into(),
                    ));
                }
            };
            if role != Role::NonMail {
                return Err(AgentError::Refused(
                    "this host's role is mail server: nothing will be disabled".into(),
                ));
            }
            let mode = match mode {
                ModeArg::Disable => Mode::Disable,
                ModeArg::LoopbackOnly => Mode::LoopbackOnly,
            };
            let root = Root::new(root);
            let (result, det) = check(&root);
            for w in &result.warnings {
                eprintln!("warning: {w} (left untouched)");
            }
            let p = plan::build(&root, &det, mode)?;
            if dry_run {
                print!("{}", output::plan(&p, true));
                return Ok(0);
            }
            let done = apply::apply(&root, &p)?;
            print!("{}", output::plan(&p, false));
            if !done.is_empty() {
                println!(
                    "journal: {} (undo with: relayguard-agent revert)",
                    root.host(relayguard_agent::harden::journal::JOURNAL_PATH)
                        .display()
                );
                println!("running daemons were not stopped; stop them or reboot");
            }
            Ok(0)
        }
        Cmd::Revert { root } => {
            let s = revert::revert(&Root::new(root))?;
            if !s.had_journal {
                println!("nothing to revert (no journal)");
            }
            if s.torn_tail {
                println!(
                    "note: ignored an incomplete last journal line (its change never started)"
                );
            }
            for d in &s.undone {
                println!("undone: {d}");
            }
            Ok(0)
        }
        Cmd::Report {
            root,
            output,
            spool_dir,
        } => {
            let root = Root::new(root);
            let (result, _) = check(&root);
            let rep = report::build(&root, result)?;
            if output.is_none() && spool_dir.is_none() {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            }
            if let Some(o) = output {
                report::write_file(&o, &rep)?;
            }
            if let Some(d) = spool_dir {
                let p = report::spool(&d, &rep)?;
                println!("spooled {}", p.display());
            }
            Ok(0)
        }
    }
}
