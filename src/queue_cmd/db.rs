//! The sharded-sweep tables (registry migration 0010): sweeps, vantages, shards and checkpointed
//! results. Claiming, leases and attempts are the job engine's; every write a worker makes for a
//! shard is fenced by the engine's lock on the shard's job (see [`fence`]).

use std::net::IpAddr;

use anyhow::Context;
use relayguard_core::scan::HostResult;
use sqlx::{PgConnection, PgPool, Row};

use super::shards::Shard;

/// A planned sweep as the workers read it.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// The `sweep` command line (without the program name), parsed again by each worker.
    pub sweep_args: Vec<String>,
    /// Ports probed.
    pub ports: Vec<u16>,
}

/// A shard row: its range and checkpoint.
#[derive(Debug, Clone)]
pub struct ShardRow {
    /// The addresses.
    pub range: Shard,
    /// How many of them are done.
    pub done: u128,
    /// pending | running | done | quarantined.
    pub state: String,
}

/// Records a sweep and returns its id.
pub async fn insert_sweep(
    conn: &mut PgConnection,
    plan: &SweepPlan,
    shard_size: u128,
    addresses: u128,
) -> anyhow::Result<i64> {
    let id: i64 = sqlx::query(
        "INSERT INTO queue_sweeps (created_at, sweep_args, ports, shard_size, addresses) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(now())
    .bind(serde_json::to_string(&plan.sweep_args)?)
    .bind(serde_json::to_string(&plan.ports)?)
    .bind(i64::try_from(shard_size).unwrap_or(i64::MAX))
    .bind(i64::try_from(addresses).unwrap_or(i64::MAX))
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    Ok(id)
}

/// Records one vantage of a sweep.
pub async fn insert_vantage(
    conn: &mut PgConnection,
    sweep: i64,
    vantage: &str,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO queue_vantages (sweep_id, vantage) VALUES ($1, $2)")
        .bind(sweep)
        .bind(vantage)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a batch of shards of one vantage, numbered from `first_number`.
pub async fn insert_shards(
    conn: &mut PgConnection,
    sweep: i64,
    vantage: &str,
    first_number: i64,
    shards: &[Shard],
) -> anyhow::Result<()> {
    let numbers: Vec<i64> = (first_number..).take(shards.len()).collect();
    let firsts: Vec<String> = shards.iter().map(|s| s.first.to_string()).collect();
    let lasts: Vec<String> = shards.iter().map(|s| s.last.to_string()).collect();
    let lens: Vec<i64> = shards
        .iter()
        .map(|s| i64::try_from(s.len()).unwrap_or(i64::MAX))
        .collect();
    sqlx::query(
        "INSERT INTO queue_shards (sweep_id, vantage, shard, first_address, last_address, addresses) \
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[])",
    )
    .bind(sweep)
    .bind(vantage)
    .bind(&numbers)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&lens)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The plan of a sweep.
pub async fn sweep_plan(pool: &PgPool, sweep: i64) -> anyhow::Result<SweepPlan> {
    let row = sqlx::query("SELECT sweep_args, ports FROM queue_sweeps WHERE id = $1")
        .bind(sweep)
        .fetch_optional(pool)
        .await?
        .with_context(|| format!("no queued sweep {sweep}"))?;
    Ok(SweepPlan {
        sweep_args: serde_json::from_str(row.try_get::<&str, _>(0)?)?,
        ports: serde_json::from_str(row.try_get::<&str, _>(1)?)?,
    })
}

/// A shard and its checkpoint.
pub async fn shard(
    pool: &PgPool,
    sweep: i64,
    vantage: &str,
    number: i64,
) -> anyhow::Result<ShardRow> {
    let row = sqlx::query(
        "SELECT first_address, last_address, done, state FROM queue_shards \
         WHERE sweep_id = $1 AND vantage = $2 AND shard = $3",
    )
    .bind(sweep)
    .bind(vantage)
    .bind(number)
    .fetch_optional(pool)
    .await?
    .with_context(|| format!("no shard {number} of sweep {sweep} ({vantage})"))?;
    Ok(ShardRow {
        range: Shard {
            first: row.try_get::<&str, _>(0)?.parse()?,
            last: row.try_get::<&str, _>(1)?.parse()?,
        },
        done: u128::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
        state: row.try_get(3)?,
    })
}

/// The engine's hold on a shard's job: the worker that claimed it and the attempt it holds.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The job's id in the engine.
    pub job: String,
    /// The worker name the engine locked the job for.
    pub worker: String,
    /// The engine's attempt count when the job was claimed.
    pub attempt: i32,
}

/// Reads the attempt count the engine gave the job, if `worker` holds it now.
pub async fn current_lease(pool: &PgPool, job: &str, worker: &str) -> anyhow::Result<Lease> {
    let attempt: i32 = sqlx::query(
        "SELECT attempts FROM apalis.jobs WHERE id = $1 AND lock_by = $2 \
         AND status IN ('Queued', 'Running')",
    )
    .bind(job)
    .bind(worker)
    .fetch_optional(pool)
    .await?
    .with_context(|| format!("job {job} is not held by {worker}"))?
    .try_get(0)?;
    Ok(Lease {
        job: job.to_string(),
        worker: worker.to_string(),
        attempt,
    })
}

/// Fencing, inside the checkpoint's transaction: the job must still be locked by this worker at
/// the same attempt. A worker paused past its lease finds the job re-enqueued (the engine bumped
/// the attempt and cleared or changed the lock) and must write nothing. The row lock taken here
/// also keeps the engine from re-enqueueing the job until the transaction ends.
pub async fn fence(conn: &mut PgConnection, lease: &Lease) -> anyhow::Result<bool> {
    let held = sqlx::query(
        "SELECT 1 FROM apalis.jobs WHERE id = $1 AND lock_by = $2 AND attempts = $3 \
         AND status IN ('Queued', 'Running') FOR UPDATE",
    )
    .bind(&lease.job)
    .bind(&lease.worker)
    .bind(lease.attempt)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.is_some())
}

/// One shard of one vantage of a sweep.
#[derive(Debug, Clone, Copy)]
pub struct ShardKey<'a> {
    /// The queued sweep.
    pub sweep: i64,
    /// The vantage.
    pub vantage: &'a str,
    /// The shard number.
    pub shard: i64,
}

/// Writes one checkpoint: the results of the addresses swept since the last one, and the new
/// checkpoint (`done` addresses of the shard; `finished` when that is all of them). The caller
/// has fenced the transaction.
pub async fn write_checkpoint(
    conn: &mut PgConnection,
    key: ShardKey<'_>,
    lease: &Lease,
    done: u128,
    finished: bool,
    results: &[HostResult],
) -> anyhow::Result<()> {
    let addresses: Vec<String> = results.iter().map(|h| h.address.to_string()).collect();
    let ports: Vec<i32> = results.iter().map(|h| i32::from(h.port)).collect();
    let hosts: Vec<String> = results
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    let findings: Vec<i64> = results.iter().map(|h| h.findings.len() as i64).collect();
    sqlx::query(
        "INSERT INTO queue_results (sweep_id, vantage, shard, written_by, address, port, host, findings) \
         SELECT $1, $2, $3, $4, * FROM unnest($5::text[], $6::int[], $7::text[], $8::bigint[]) \
         ON CONFLICT (sweep_id, vantage, address, port) DO UPDATE \
         SET host = EXCLUDED.host, findings = EXCLUDED.findings, written_by = EXCLUDED.written_by",
    )
    .bind(key.sweep)
    .bind(key.vantage)
    .bind(key.shard)
    .bind(&lease.worker)
    .bind(&addresses)
    .bind(&ports)
    .bind(&hosts)
    .bind(&findings)
    .execute(&mut *conn)
    .await?;
    let open = results
        .iter()
        .filter(|h| h.state == relayguard_core::scan::PortState::Open)
        .count() as i64;
    sqlx::query(
        "UPDATE queue_shards SET done = $4, state = $5, worker = $6, attempt = $7, \
         open_ports = open_ports + $8, updated_at = $9 \
         WHERE sweep_id = $1 AND vantage = $2 AND shard = $3",
    )
    .bind(key.sweep)
    .bind(key.vantage)
    .bind(key.shard)
    .bind(i64::try_from(done).unwrap_or(i64::MAX))
    .bind(if finished { "done" } else { "running" })
    .bind(&lease.worker)
    .bind(lease.attempt)
    .bind(open)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a shard quarantined (too many attempts).
pub async fn quarantine(
    conn: &mut PgConnection,
    sweep: i64,
    vantage: &str,
    number: i64,
    lease: &Lease,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE queue_shards SET state = 'quarantined', worker = $4, attempt = $5, updated_at = $6 \
         WHERE sweep_id = $1 AND vantage = $2 AND shard = $3",
    )
    .bind(sweep)
    .bind(vantage)
    .bind(number)
    .bind(&lease.worker)
    .bind(lease.attempt)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inside the transaction that ended a shard: locks the vantage row (so two workers ending the
/// last two shards at once see each other's) and, when no shard is left and the vantage is still
/// running, moves it to `merging` and returns true: the caller queues the merge.
pub async fn vantage_finished(
    conn: &mut PgConnection,
    sweep: i64,
    vantage: &str,
) -> anyhow::Result<bool> {
    let state: String = sqlx::query(
        "SELECT state FROM queue_vantages WHERE sweep_id = $1 AND vantage = $2 FOR UPDATE",
    )
    .bind(sweep)
    .bind(vantage)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    if state != "running" {
        return Ok(false);
    }
    let left: i64 = sqlx::query(
        "SELECT count(*) FROM queue_shards WHERE sweep_id = $1 AND vantage = $2 \
         AND state NOT IN ('done', 'quarantined')",
    )
    .bind(sweep)
    .bind(vantage)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    if left > 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE queue_vantages SET state = 'merging', finished_at = $3 \
         WHERE sweep_id = $1 AND vantage = $2",
    )
    .bind(sweep)
    .bind(vantage)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// What a merge needs: the results, and the ranges of the shards that were done (the exact
/// coverage: a quarantined shard was not looked at and must not resolve anything).
pub async fn merge_inputs(
    pool: &PgPool,
    sweep: i64,
    vantage: &str,
) -> anyhow::Result<(String, Vec<HostResult>, Vec<(IpAddr, IpAddr)>)> {
    let state: String =
        sqlx::query("SELECT state FROM queue_vantages WHERE sweep_id = $1 AND vantage = $2")
            .bind(sweep)
            .bind(vantage)
            .fetch_one(pool)
            .await?
            .try_get(0)?;
    let rows = sqlx::query("SELECT host FROM queue_results WHERE sweep_id = $1 AND vantage = $2")
        .bind(sweep)
        .bind(vantage)
        .fetch_all(pool)
        .await?;
    let mut hosts = Vec::with_capacity(rows.len());
    for row in rows {
        hosts.push(serde_json::from_str::<HostResult>(
            row.try_get::<&str, _>(0)?,
        )?);
    }
    hosts.sort_by_key(|h| (h.address, h.port));
    let rows = sqlx::query(
        "SELECT first_address, last_address FROM queue_shards \
         WHERE sweep_id = $1 AND vantage = $2 AND state = 'done' ORDER BY shard",
    )
    .bind(sweep)
    .bind(vantage)
    .fetch_all(pool)
    .await?;
    let mut covered = Vec::with_capacity(rows.len());
    for row in rows {
        covered.push((
            row.try_get::<&str, _>(0)?.parse()?,
            row.try_get::<&str, _>(1)?.parse()?,
        ));
    }
    Ok((state, hosts, covered))
}

/// The start of a vantage's sweep (first checkpoint), for the registry record.
pub async fn mark_started(pool: &PgPool, sweep: i64, vantage: &str) -> anyhow::Result<i64> {
    let started: i64 = sqlx::query(
        "UPDATE queue_vantages SET started_at = COALESCE(started_at, $3) \
         WHERE sweep_id = $1 AND vantage = $2 RETURNING started_at",
    )
    .bind(sweep)
    .bind(vantage)
    .bind(now())
    .fetch_one(pool)
    .await?
    .try_get(0)?;
    Ok(started)
}

/// When a vantage's sweep started (first checkpoint) and finished (last shard ended).
pub async fn vantage_times(pool: &PgPool, sweep: i64, vantage: &str) -> anyhow::Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT started_at, finished_at FROM queue_vantages WHERE sweep_id = $1 AND vantage = $2",
    )
    .bind(sweep)
    .bind(vantage)
    .fetch_one(pool)
    .await?;
    let finished: Option<i64> = row.try_get(1)?;
    let finished = finished.unwrap_or_else(now);
    let started: Option<i64> = row.try_get(0)?;
    Ok((started.unwrap_or(finished), finished))
}

/// A registry sweep already recorded for this merge: same vantage, times and targets. A merge
/// interrupted after the registry recorded it and before the vantage was marked merged is run
/// again by the engine; this keeps it from recording the sweep twice.
pub async fn recorded_merge(
    pool: &PgPool,
    vantage: &str,
    targets: &[String],
    started_at: i64,
    finished_at: i64,
) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT id FROM sweeps WHERE vantage = $1 AND targets = $2 AND started_at = $3 \
         AND finished_at = $4 ORDER BY id LIMIT 1",
    )
    .bind(vantage)
    .bind(serde_json::to_string(targets)?)
    .bind(started_at)
    .bind(finished_at)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Records that the vantage was merged into registry sweep `registry_sweep`.
pub async fn mark_merged(
    pool: &PgPool,
    sweep: i64,
    vantage: &str,
    registry_sweep: Option<i64>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE queue_vantages SET state = 'merged', registry_sweep_id = $3 \
         WHERE sweep_id = $1 AND vantage = $2",
    )
    .bind(sweep)
    .bind(vantage)
    .bind(registry_sweep)
    .execute(pool)
    .await?;
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
