//! `relayguard-agent`: argument parsing and wiring only; the work lives in the library.
//!
//! Exit codes (`relayguard_core::exit`): 0 = fine (check: no MTA enabled, running or
//! listening); 1 = check found an MTA enabled at boot, running or listening; 2 = error or usage
//! error; 4 = refused (e.g. host role is not non-mail); 5 = busy (another harden or revert runs).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use relayguard_agent::harden::{Mode, Role, apply, journal, plan, reappear};
use relayguard_agent::lock::Lock;
use relayguard_agent::output;
use relayguard_agent::registry::RegistryClient;
use relayguard_agent::root::Root;
use relayguard_agent::{AgentError, check, report, revert};
use relayguard_core::exit;

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
        /// Also stop the MTA daemons running now (live system only, `--mode disable`).
        #[arg(long)]
        stop: bool,
        /// The host's role, for offline use; otherwise it is fetched from --registry.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Where to fetch the role from.
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Undo every change recorded in the journal, byte for byte.
    Revert {
        /// Operate on this directory as `/`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Build the versioned JSON report; with --registry, spool it and send the spool.
    Report {
        /// Inspect this directory as `/`.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Write the report to this file (atomically).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Include the mail queue's health (messages per queue, bounces, oldest age); on by
        /// itself when the registry has this host as a mail server.
        #[arg(long)]
        queue: bool,
        /// The mail log bounces are counted in (default: Exim's main log for Exim, else the
        /// root's /var/log/mail.log, else /var/log/maillog).
        #[arg(long, value_name = "FILE")]
        mail_log: Option<PathBuf>,
        /// Where report state (the mail log's read offset) is kept (default: the root's
        /// /var/lib/relayguard-agent).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Spool directory: reports wait here until the registry has acknowledged them.
        #[arg(long, default_value = "/var/spool/relayguard-agent")]
        spool_dir: PathBuf,
        /// Where to send the report.
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How to reach the registry.
#[derive(clap::Args)]
struct RegistryArgs {
    /// The registry, e.g. https://registry.campus.example:8025.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// This host's registered address.
    #[arg(long, value_name = "ADDR", requires = "registry")]
    address: Option<String>,
    /// File holding this host's agent token (default: $RELAYGUARD_AGENT_TOKEN).
    #[arg(long, value_name = "FILE", requires = "registry")]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for the registry instead of the system store.
    #[arg(long, value_name = "FILE", requires = "registry")]
    ca: Option<PathBuf>,
}

impl RegistryArgs {
    /// The client, when --registry was given.
    fn client(&self) -> Result<Option<RegistryClient>, AgentError> {
        let Some(url) = &self.registry else {
            return Ok(None);
        };
        let address = self.address.as_deref().ok_or_else(|| {
            AgentError::Registry(
                "--registry needs --address (this host's registered address)".into(),
            )
        })?;
        let token = match &self.token_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| AgentError::io(f, e))?
                .trim()
                .to_string(),
            None => std::env::var("RELAYGUARD_AGENT_TOKEN").unwrap_or_default(),
        };
        if token.is_empty() {
            return Err(AgentError::Registry(
                "no agent token: pass --token-file or set RELAYGUARD_AGENT_TOKEN".into(),
            ));
        }
        RegistryClient::new(url, address, &token, self.ca.as_deref()).map(Some)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(AgentError::Refused(m)) => {
            eprintln!("relayguard-agent: refused: {m}");
            ExitCode::from(exit::REFUSED)
        }
        Err(e @ AgentError::Busy(_)) => {
            eprintln!("relayguard-agent: {e}; try again when it has finished");
            ExitCode::from(exit::BUSY)
        }
        Err(e) => {
            eprintln!("relayguard-agent: error: {e}");
            ExitCode::from(exit::ERROR)
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
                exit::ATTENTION
            } else {
                exit::OK
            })
        }
        Cmd::Harden {
            root,
            dry_run,
            mode,
            role,
            registry,
            stop,
        } => {
            if stop && root != Path::new("/") {
                return Err(AgentError::Refused(
                    "--stop acts on the running system: it cannot be combined with --root".into(),
                ));
            }
            if stop && matches!(mode, ModeArg::LoopbackOnly) {
                return Err(AgentError::Refused(
                    "--stop is for --mode disable; restart the MTA to apply loopback-only".into(),
                ));
            }
            let role = match (role, registry.client()?) {
                (Some(RoleArg::NonMail), _) => Role::NonMail,
                (Some(RoleArg::Mail), _) => Role::Mail,
                (None, Some(client)) => match client.role()?.role {
                    relayguard_core::Role::NonMail => Role::NonMail,
                    _ => Role::Mail,
                },
                (None, None) => {
                    return Err(AgentError::Refused(
                        "host role unknown: pass --registry URL --address ADDR (with a token), or --role non-mail offline".into(),
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
            // Held from before the check to the end: the plan must describe the files as this
            // run changes them. A dry run changes nothing and creates no lock file.
            let lock = if dry_run {
                None
            } else {
                Some(Lock::acquire(&root)?)
            };
            let (result, det) = check(&root);
            for w in &result.warnings {
                eprintln!("warning: {w} (left untouched)");
            }
            let p = plan::build(&root, &det, mode)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let prior = journal::load_contents(&root)?;
            let back = reappear::find(&root, prior.as_ref(), &p, &det, mode, now);
            let Some(lock) = lock else {
                print!("{}", output::plan(&p, true));
                for r in &back {
                    println!("reappeared (dry run): {}", reappear::describe(r));
                }
                return Ok(exit::OK);
            };
            let round = apply::Round {
                mode,
                at: now,
                reappeared: &back,
            };
            let done = apply::apply(&root, &p, lock.created_dirs(), round);
            let released = lock.release(&root, &[]);
            let done = done?;
            released?;
            print!("{}", output::plan(&p, false));
            for r in &back {
                println!("reappeared: {}", reappear::describe(r));
            }
            if !done.is_empty() {
                println!(
                    "journal: {} (undo with: relayguard-agent revert)",
                    root.host(relayguard_agent::harden::journal::JOURNAL_PATH)
                        .display()
                );
            }
            if !stop {
                if !done.is_empty() {
                    println!("running daemons were not stopped; use --stop, or reboot");
                }
                return Ok(exit::OK);
            }
            let stopped =
                relayguard_agent::harden::stop::stop_running(std::time::Duration::from_secs(10));
            let mut stuck = false;
            for s in &stopped {
                println!("stopped {:?}: {}", s.mta, s.actions.join(", "));
                if !s.still_running.is_empty() {
                    stuck = true;
                    eprintln!(
                        "warning: {:?} still running: pids {:?}",
                        s.mta, s.still_running
                    );
                }
            }
            Ok(if stuck { exit::ERROR } else { exit::OK })
        }
        Cmd::Revert { root } => {
            let root = Root::new(root);
            let lock = Lock::acquire(&root)?;
            let s = revert::revert(&root);
            let dirs = s.as_ref().map(|s| s.state_dirs.clone()).unwrap_or_default();
            let released = lock.release(&root, &dirs);
            let s = s?;
            released?;
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
            Ok(exit::OK)
        }
        Cmd::Report {
            root,
            output,
            queue,
            mail_log,
            state_dir,
            spool_dir,
            registry,
        } => {
            let client = registry.client()?;
            let root = Root::new(root);
            let (result, _) = check(&root);
            // A registry that cannot say the role now leaves the queue out, not the report.
            let mail_server = client.as_ref().is_some_and(|c| {
                c.role()
                    .is_ok_and(|r| r.role != relayguard_core::Role::NonMail)
            });
            let sources = report::QueueSources {
                mail_log,
                state_dir: state_dir
                    .unwrap_or_else(|| root.host(relayguard_agent::harden::journal::JOURNAL_DIR)),
            };
            let rep = report::build(&root, result, (queue || mail_server).then_some(&sources))?;
            if let Some(o) = &output {
                report::write_file(o, &rep)?;
            }
            let Some(client) = client else {
                if output.is_none() {
                    println!("{}", serde_json::to_string_pretty(&rep)?);
                }
                return Ok(exit::OK);
            };
            // Spool first: if the upload fails, the report waits for the next run.
            report::spool(&spool_dir, &rep)?;
            let sent = client.flush_spool(&spool_dir)?;
            println!(
                "sent {} report(s) to the registry{}",
                sent.sent,
                if sent.rejected > 0 {
                    format!(
                        "; {} rejected, kept in {}/rejected",
                        sent.rejected,
                        spool_dir.display()
                    )
                } else {
                    String::new()
                }
            );
            Ok(exit::OK)
        }
    }
}
