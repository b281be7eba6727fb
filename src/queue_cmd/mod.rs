//! Sweeps that outgrow one process: `sweep --queue` plans a sweep into shards on the PostgreSQL
//! job queue, `relayguard worker` sweeps them, `relayguard sweeps show` reports progress.
//!
//! The job engine (apalis with its PostgreSQL backend) claims jobs, keeps leases alive with
//! worker heartbeats and re-enqueues the jobs of dead workers; nothing here does that by hand.
//! What this module adds is the sweep on top: shards, checkpoints fenced by the engine's lock,
//! quarantine after too many attempts, and the merge into the registry. See docs/scaling.md.

mod db;
pub mod schedule;
pub mod shards;
mod worker;

use anyhow::{Context, bail};
use apalis_core::task::builder::TaskBuilder;
use apalis_postgres::{PgTask, PostgresStorage};
use clap::{Args, Subcommand};
use relayguard_registry::Store;
use relayguard_registry::store::{Backend, redact};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

use crate::cli::SweepArgs;
use crate::sweep_cmd::setup;

pub use schedule::{ScheduleArgs, schedule};
pub use worker::{WorkerArgs, work};

/// Shards written per statement while planning, so planning memory stays bounded.
const PLAN_BATCH: usize = 1000;

/// A job on the queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Sweep one shard of a sweep for one vantage.
    Shard {
        /// The queued sweep.
        sweep: i64,
        /// The vantage.
        vantage: String,
        /// The shard number.
        shard: i64,
    },
    /// Every shard of the vantage ended: reconcile the results into the registry.
    Merge {
        /// The queued sweep.
        sweep: i64,
        /// The vantage.
        vantage: String,
    },
}

impl Job {
    /// The job as the engine stores it, with its idempotency key: one job per (sweep, vantage,
    /// shard) and one merge per (sweep, vantage), however often it is pushed.
    fn task(&self) -> anyhow::Result<PgTask> {
        let key = match self {
            Job::Shard {
                sweep,
                vantage,
                shard,
            } => format!("{sweep}/{vantage}/shard/{shard}"),
            Job::Merge { sweep, vantage } => format!("{sweep}/{vantage}/merge"),
        };
        Ok(TaskBuilder::new(serde_json::to_vec(self)?)
            .idempotency_key(key)
            .build())
    }
}

/// The engine's queue a vantage's workers take jobs from: workers of one vantage never take
/// another's shards.
fn queue_name(vantage: &str) -> String {
    format!("relayguard.sweep.{vantage}")
}

/// Opens a PostgreSQL pool for the queue, refusing anything else with a clear message. A session
/// left idle inside a transaction (a worker stopped mid-checkpoint) is ended by the server, so
/// its row locks cannot hold a lease past its expiry.
async fn connect(
    database: &str,
    idle_in_transaction: std::time::Duration,
) -> anyhow::Result<PgPool> {
    // Opening the registry first applies its migrations (the queue's tables among them).
    let store = Store::open(database)
        .await
        .with_context(|| format!("opening the registry database {}", redact(database)))?;
    if store.backend() != Backend::Postgres {
        bail!(
            "sharded sweeps need the registry on PostgreSQL (--database postgres://USER@HOST/DB): \
             the job queue lives there, and {} is SQLite. Without --queue, `relayguard sweep` \
             sweeps here on SQLite as before",
            redact(database)
        );
    }
    store.close().await;
    let options: PgConnectOptions = database
        .parse()
        .with_context(|| format!("parsing {}", redact(database)))?;
    let ms = idle_in_transaction.as_millis().max(1000).to_string();
    let options = options.options([("idle_in_transaction_session_timeout", ms.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to {}", redact(database)))?;
    PostgresStorage::setup(&pool)
        .await
        .context("setting up the job queue's tables")?;
    Ok(pool)
}

/// `sweep --queue`: records the sweep, one vantage row per `--vantage`, and its shards as jobs.
pub async fn plan(args: &SweepArgs, database: &str) -> anyhow::Result<u8> {
    let pool = connect(database, std::time::Duration::from_secs(60)).await?;
    // Workers parse the same command line again, so every sweep option means the same there.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut tx = pool.begin().await?;
    let planned = plan_in(&mut tx, args, argv).await?;
    tx.commit().await?;
    println!(
        "sweep {} queued: {} addresses in {} shards of up to {} for {} \
         (start `relayguard worker --vantage NAME`; follow with `relayguard sweeps show {}`)",
        planned.sweep,
        planned.addresses,
        planned.shards,
        args.shard_size,
        planned.vantages.join(", "),
        planned.sweep
    );
    Ok(0)
}

/// What [`plan_in`] recorded.
struct Planned {
    sweep: i64,
    addresses: u128,
    shards: i64,
    vantages: Vec<String>,
}

/// Plans a sweep inside `tx`: the sweep row with `argv` (the command line the workers parse
/// again), a row per vantage, the shards, and one job per shard.
async fn plan_in(
    tx: &mut PgConnection,
    args: &SweepArgs,
    argv: Vec<String>,
) -> anyhow::Result<Planned> {
    if args.shard_size == 0 {
        bail!("--shard-size must be at least 1");
    }
    let prepared = setup::prepare(args).await?;
    if prepared.targets.has_names() {
        bail!(
            "--queue shards address ranges; sweep host names without --queue (or give their addresses)"
        );
    }
    let ranges = shards::merge(prepared.targets.ranges());
    let addresses: u128 = shards::shards(&ranges, u128::MAX).map(|s| s.len()).sum();
    if addresses == 0 {
        bail!("nothing to sweep: every target is excluded");
    }
    let mut vantages = args.vantage.clone();
    vantages.sort();
    vantages.dedup();
    let plan = db::SweepPlan {
        sweep_args: argv,
        ports: args.ports.clone(),
    };
    let sweep = db::insert_sweep(tx, &plan, args.shard_size, addresses).await?;
    let mut count = 0i64;
    for vantage in &vantages {
        db::insert_vantage(tx, sweep, vantage).await?;
        let mut numbered = 0i64;
        let mut batch = Vec::with_capacity(PLAN_BATCH);
        let mut list = shards::shards(&ranges, args.shard_size).peekable();
        while list.peek().is_some() {
            batch.clear();
            batch.extend(list.by_ref().take(PLAN_BATCH));
            db::insert_shards(tx, sweep, vantage, numbered, &batch).await?;
            let tasks = (numbered..)
                .take(batch.len())
                .map(|shard| {
                    Job::Shard {
                        sweep,
                        vantage: vantage.clone(),
                        shard,
                    }
                    .task()
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            apalis_postgres::queries::push_tasks(&mut *tx, &queue_name(vantage), tasks)
                .await
                .context("queueing the shards")?;
            numbered += batch.len() as i64;
        }
        count = numbered;
    }
    Ok(Planned {
        sweep,
        addresses,
        shards: count,
        vantages,
    })
}

/// The sweep arguments in a recorded command line: `sweep …` or `schedule add …`.
fn recorded_sweep_args(
    argv: Vec<String>,
) -> anyhow::Result<(Box<SweepArgs>, Option<std::path::PathBuf>)> {
    use clap::Parser;
    let cli =
        crate::cli::Cli::try_parse_from(std::iter::once("relayguard".to_string()).chain(argv))
            .map_err(|e| {
                anyhow::anyhow!("a recorded sweep command line does not parse here: {e}")
            })?;
    let rules = cli.rules;
    match cli.command {
        crate::cli::Command::Sweep(args) => Ok((args, rules)),
        crate::cli::Command::Schedule(schedule::ScheduleArgs {
            command: schedule::ScheduleCommand::Add { sweep, .. },
        }) => Ok((sweep, rules)),
        _ => bail!("a recorded command line is neither `sweep` nor `schedule add`"),
    }
}

/// `relayguard sweeps`.
#[derive(Debug, Args)]
pub struct SweepsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SweepsCommand,
}

/// `relayguard sweeps …` subcommands.
#[derive(Debug, Subcommand)]
pub enum SweepsCommand {
    /// Progress of a queued sweep per vantage: shards done / running / pending / quarantined,
    /// addresses, open ports, findings.
    Show {
        /// The number `sweep --queue` printed.
        id: i64,
    },
}

/// Runs `relayguard sweeps`.
pub async fn sweeps(args: SweepsArgs, database: &str) -> anyhow::Result<u8> {
    let SweepsCommand::Show { id } = args.command;
    // Refuses SQLite with the queue's own message.
    connect(database, std::time::Duration::from_secs(60))
        .await?
        .close()
        .await;
    let store = Store::open(database).await?;
    let Some(sweep) = store.queued_sweep(id).await? else {
        bail!("no queued sweep {id}");
    };
    let rows = &sweep.vantages;
    println!(
        "{:<16} {:<8} {:>6} {:>8} {:>8} {:>11} {:>21} {:>6} {:>9} {:>8}",
        "VANTAGE",
        "STATE",
        "DONE",
        "RUNNING",
        "PENDING",
        "QUARANTINED",
        "ADDRESSES",
        "OPEN",
        "FINDINGS",
        "REGISTRY"
    );
    for r in rows {
        println!(
            "{:<16} {:<8} {:>6} {:>8} {:>8} {:>11} {:>21} {:>6} {:>9} {:>8}",
            r.vantage,
            r.state,
            r.shards_done,
            r.shards_running,
            r.shards_pending,
            r.shards_quarantined,
            format!("{}/{}", r.addresses_done, r.addresses),
            r.open_ports,
            r.findings,
            r.registry_sweep_id
                .map_or_else(|| "-".to_string(), |id| format!("#{id}"))
        );
    }
    for q in &sweep.quarantined {
        println!(
            "quarantined: {} shard {} ({}-{}) was never swept",
            q.vantage, q.shard, q.first, q.last
        );
    }
    let stuck = rows.iter().any(|r| r.shards_quarantined > 0);
    Ok(if stuck {
        relayguard_core::exit::ATTENTION
    } else {
        relayguard_core::exit::OK
    })
}
