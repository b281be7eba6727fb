//! `relayguard worker`: takes the shards of one vantage from the job queue and sweeps them with
//! the same engine as `sweep`, writing results in fenced checkpoints; merges a vantage into the
//! registry when its last shard ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use apalis_postgres::{Config, PostgresStorage};
use clap::Args;
use relayguard_core::SweepMeta;
use relayguard_core::scan::HostResult;
use relayguard_registry::{Store, record_sweep};
use relayguard_scanner::targets::{TargetSet, TargetSpec};
use relayguard_scanner::{Progress, SweepConfig, sweep};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc};

use super::db;
use super::shards::Shard;
use super::{Job, connect, queue_name};
use crate::sweep_cmd::setup;

/// `relayguard worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The vantage this worker sweeps from: it takes only the shards planned for this name.
    #[arg(long, value_name = "NAME")]
    pub vantage: String,
    /// Local address to connect from (overrides the sweep's --source).
    #[arg(long, value_name = "ADDR")]
    pub source: Option<IpAddr>,
    /// Most discovery connections in flight (overrides the sweep's --concurrency).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Addresses per checkpoint: results are written every this many addresses, so a worker
    /// killed mid-shard loses at most this much work.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub checkpoint: u128,
    /// Seconds between the worker's heartbeats to the queue.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub heartbeat: u64,
    /// Heartbeats missed before the queue gives the worker's shard to another worker (the lease
    /// is heartbeat × this).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub missed_heartbeats: usize,
    /// A shard taken this many times without finishing (each taker died or lost its lease) is
    /// quarantined: reported, left out of the coverage, and the rest of the sweep finishes.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_attempts: i32,
    /// This worker's name in the queue (default: vantage, host name and process id).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// What a sweep needs on this worker, built once per queued sweep from its command line.
struct Engine {
    config: SweepConfig,
    store: Store,
    ports: Vec<u16>,
}

/// State shared by the worker's jobs.
struct WorkerState {
    pool: PgPool,
    database: String,
    args: WorkerArgs,
    rules_dir: Option<PathBuf>,
    engines: Mutex<HashMap<i64, Arc<Engine>>>,
}

/// Runs the worker until SIGINT or SIGTERM.
pub async fn work(
    args: WorkerArgs,
    database: &str,
    rules_dir: Option<PathBuf>,
) -> anyhow::Result<u8> {
    if args.checkpoint == 0 || args.heartbeat == 0 || args.missed_heartbeats == 0 {
        bail!("--checkpoint, --heartbeat and --missed-heartbeats must be at least 1");
    }
    let lease = Duration::from_secs(args.heartbeat * args.missed_heartbeats as u64);
    let pool = connect(database, lease).await?;
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        // Host, process and start time: a name is never reused, so a new worker never takes
        // over (and strands) the jobs an old one held under the same name.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "{}@{}#{}.{nanos:08x}",
            args.vantage,
            host.trim(),
            std::process::id()
        )
    });
    let config = Config::default()
        .queue(queue_name(&args.vantage))
        // One shard at a time, claimed only when this worker is free: a worker never sits on
        // shards another worker could take.
        .batch_size(1)
        .heartbeat_interval(Duration::from_secs(args.heartbeat))
        .missed_heartbeats(args.missed_heartbeats);
    let state = Arc::new(WorkerState {
        pool: pool.clone(),
        database: database.to_string(),
        args,
        rules_dir,
        engines: Mutex::new(HashMap::new()),
    });
    eprintln!(
        "relayguard: worker {name} takes shards of vantage {}",
        state.args.vantage
    );
    // Every worker also runs the scheduler: a slot fires once however many run it.
    tokio::spawn(super::schedule::run_scheduler(
        pool.clone(),
        Duration::from_secs(state.args.heartbeat.max(1)),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if shutdown().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    // The engine's worker ends on a database error (a server restart, a lost connection). Start
    // it again under a new name: the engine re-enqueues whatever the old name held once its
    // lease runs out, and the shard resumes from its last checkpoint.
    for run in 0u64.. {
        let run_name = if run == 0 {
            name.clone()
        } else {
            format!("{name}~{run}")
        };
        let backend = PostgresStorage::<Job>::new(&pool).with_config(config.clone());
        let worker = WorkerBuilder::new(run_name.as_str())
            .backend(backend)
            .layer(tower::limit::ConcurrencyLimitLayer::new(1))
            .data(state.clone())
            .build(handle);
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
            Ok::<(), std::io::Error>(())
        };
        let outcome = worker.run_until(stopped).await;
        if *stop_rx.borrow() {
            break;
        }
        match outcome {
            Ok(()) => eprintln!("relayguard: worker {run_name} stopped; starting again"),
            Err(e) => eprintln!("relayguard: worker {run_name} stopped: {e}; starting again"),
        }
        tokio::time::sleep(Duration::from_secs(state.args.heartbeat)).await;
    }
    Ok(relayguard_core::exit::OK)
}

async fn shutdown() -> Result<(), std::io::Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// One job from the queue.
async fn handle(
    job: Job,
    id: TaskId,
    worker: WorkerContext,
    state: Data<Arc<WorkerState>>,
) -> Result<(), BoxDynError> {
    let outcome = match &job {
        Job::Shard {
            sweep,
            vantage,
            shard,
        } => {
            state
                .run_shard(*sweep, vantage, *shard, &id.to_string(), worker.name())
                .await
        }
        Job::Merge { sweep, vantage } => state.merge(*sweep, vantage).await,
    };
    outcome.map_err(|e| {
        eprintln!("relayguard: worker {}: {job:?}: {e:#}", worker.name());
        e.into()
    })
}

impl WorkerState {
    /// Sweeps a shard from its checkpoint to its end, one fenced checkpoint at a time.
    async fn run_shard(
        &self,
        sweep: i64,
        vantage: &str,
        number: i64,
        job: &str,
        worker: &str,
    ) -> anyhow::Result<()> {
        let lease = db::current_lease(&self.pool, job, worker).await?;
        let row = db::shard(&self.pool, sweep, vantage, number).await?;
        if row.state == "done" || row.state == "quarantined" {
            return Ok(());
        }
        if lease.attempt >= self.args.max_attempts {
            let mut tx = self.pool.begin().await?;
            if !db::fence(&mut tx, &lease).await? {
                bail!("lost the lease on shard {number} before quarantining it");
            }
            db::quarantine(&mut tx, sweep, vantage, number, &lease).await?;
            self.end_shard(&mut tx, sweep, vantage).await?;
            tx.commit().await?;
            eprintln!(
                "relayguard: quarantined shard {number} of sweep {sweep} ({vantage}, {}-{}) after {} attempts",
                row.range.first, row.range.last, lease.attempt
            );
            return Ok(());
        }
        let engine = self.engine(sweep).await?;
        db::mark_started(&self.pool, sweep, vantage).await?;
        let key = db::ShardKey {
            sweep,
            vantage,
            shard: number,
        };
        let total = row.range.len();
        let mut done = row.done;
        while let Some(chunk) = row.range.slice(done, self.args.checkpoint) {
            let results = sweep_range(chunk, &engine.config).await?;
            done += chunk.len();
            let finished = done >= total;
            let mut tx = self.pool.begin().await?;
            if !db::fence(&mut tx, &lease).await? {
                bail!(
                    "lost the lease on shard {number} of sweep {sweep} (attempt {}): another worker \
                     owns it now; this checkpoint was not written",
                    lease.attempt
                );
            }
            db::write_checkpoint(&mut tx, key, &lease, done, finished, &results).await?;
            if finished {
                self.end_shard(&mut tx, sweep, vantage).await?;
            }
            tx.commit().await?;
            tracing::info!(sweep, vantage, shard = number, done, total, "checkpoint");
        }
        Ok(())
    }

    /// After a shard ended (inside its transaction): queue the merge if it was the last.
    async fn end_shard(
        &self,
        tx: &mut sqlx::PgConnection,
        sweep: i64,
        vantage: &str,
    ) -> anyhow::Result<()> {
        if db::vantage_finished(tx, sweep, vantage).await? {
            let task = Job::Merge {
                sweep,
                vantage: vantage.to_string(),
            }
            .task()?;
            apalis_postgres::queries::push_tasks(tx, &queue_name(vantage), vec![task])
                .await
                .context("queueing the merge")?;
        }
        Ok(())
    }

    /// Reconciles a finished vantage into the registry exactly as a single-process sweep is:
    /// the same `record_sweep`, with the coverage of the shards that were done.
    async fn merge(&self, sweep: i64, vantage: &str) -> anyhow::Result<()> {
        let (state, hosts, covered) = db::merge_inputs(&self.pool, sweep, vantage).await?;
        if state == "merged" {
            return Ok(());
        }
        let engine = self.engine(sweep).await?;
        let (started_at, finished_at) = db::vantage_times(&self.pool, sweep, vantage).await?;
        let targets = covered
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>();
        if targets.is_empty() {
            // Every shard was quarantined: nothing was looked at, nothing may be resolved.
            db::mark_merged(&self.pool, sweep, vantage, None).await?;
            eprintln!("relayguard: sweep {sweep} ({vantage}) swept nothing: not recorded");
            return Ok(());
        }
        if let Some(id) =
            db::recorded_merge(&self.pool, vantage, &targets, started_at, finished_at).await?
        {
            db::mark_merged(&self.pool, sweep, vantage, Some(id)).await?;
            return Ok(());
        }
        let meta = SweepMeta {
            vantage: vantage.to_string(),
            targets,
            ports: engine.ports.clone(),
            started_at,
            finished_at,
        };
        let row = record_sweep(&engine.store, &meta, &hosts)
            .await
            .context("recording the sweep in the registry")?;
        db::mark_merged(&self.pool, sweep, vantage, Some(row.id)).await?;
        eprintln!(
            "relayguard: sweep {sweep} ({vantage}) merged into registry sweep {}",
            row.id
        );
        Ok(())
    }

    /// The sweep engine for a queued sweep: its command line parsed again, with this worker's
    /// --source and --concurrency, built once per sweep.
    async fn engine(&self, sweep: i64) -> anyhow::Result<Arc<Engine>> {
        let mut engines = self.engines.lock().await;
        if let Some(e) = engines.get(&sweep) {
            return Ok(e.clone());
        }
        let plan = db::sweep_plan(&self.pool, sweep).await?;
        let (mut args, recorded_rules) = super::recorded_sweep_args(plan.sweep_args)?;
        // The plan already cut exclusions and special ranges out of the shards, and each shard is
        // given as its own range below.
        args.targets.clear();
        args.exclude.clear();
        args.exclude_file.clear();
        args.allow_special = true;
        args.rules = self.rules_dir.clone().or(recorded_rules);
        if let Some(source) = self.args.source {
            args.source = Some(source);
        }
        if let Some(concurrency) = self.args.concurrency {
            args.concurrency = concurrency;
        }
        let prepared = setup::prepare(&args).await?;
        let store = Store::open(&self.database)
            .await
            .context("opening the registry")?
            .with_rules(Arc::new(prepared.rules.clone()));
        let config = setup::sweep_config(&args, prepared.rules, prepared.dns)?;
        let engine = Arc::new(Engine {
            config,
            store,
            ports: plan.ports,
        });
        engines.insert(sweep, engine.clone());
        Ok(engine)
    }
}

/// Sweeps one range with the scanner's engine and returns its results, sorted.
async fn sweep_range(range: Shard, config: &SweepConfig) -> anyhow::Result<Vec<HostResult>> {
    let targets = TargetSet::build(
        &[TargetSpec::Range(range.first, range.last)],
        &[],
        |_| async { Err::<Vec<IpAddr>, _>("a shard holds no names".to_string()) },
    )
    .await?;
    let (tx, mut rx) = mpsc::channel::<HostResult>(256);
    let progress = Arc::new(Progress::default());
    let mut results = Vec::new();
    let collect = async {
        while let Some(host) = rx.recv().await {
            results.push(host);
        }
    };
    tokio::join!(sweep::run(&targets, config, progress, tx), collect);
    results.sort_by_key(|h| (h.address, h.port));
    Ok(results)
}
