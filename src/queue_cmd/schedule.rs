//! Scheduled sweeps: `relayguard schedule add NAME --cron EXPR TARGETS…` records a sweep command
//! line and a cron expression; at each slot the sweep is planned on the queue, once.
//!
//! Any number of processes may run the scheduler (every `relayguard worker` does, so does
//! `relayguard serve` on PostgreSQL, and `relayguard schedule run-due` does it once, for a
//! systemd timer). A slot fires exactly once:
//! its (schedule, slot) row is inserted in the same transaction that plans the sweep, and the
//! primary key turns every other insert for that slot into nothing. After downtime only the
//! latest missed slot fires: a sweep a day late is one sweep, not one per day missed.

use std::str::FromStr;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use sqlx::{PgPool, Row};

use super::{connect, plan_in, recorded_sweep_args};
use crate::cli::SweepArgs;

/// Most slots looked at per schedule and run (a schedule every second, down for a day).
const MAX_SLOTS_SCANNED: usize = 100_000;

/// `relayguard schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

/// `relayguard schedule …` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Add a scheduled sweep: at each slot of --cron (UTC), the sweep is planned on the queue as
    /// `sweep --queue` would plan it, for the workers of its --vantage(s).
    Add {
        /// A name for the schedule.
        name: String,
        /// When: a cron expression in UTC, five fields ("0 3 * * *": daily at 03:00) or six with
        /// seconds first.
        #[arg(long, value_name = "EXPR")]
        cron: String,
        /// The sweep, as for `relayguard sweep`.
        #[command(flatten)]
        sweep: Box<SweepArgs>,
    },
    /// List the schedules and their last fired slot.
    List,
    /// Remove a schedule: no slot of it fires any more. Sweeps it already planned stay.
    Remove {
        /// The schedule's name.
        name: String,
    },
    /// Plan the sweeps whose slot is due (each slot once), then exit: for a systemd timer or cron
    /// on sites without a long-running worker.
    RunDue {
        /// Act as if it were this time (Unix seconds), not now: for replays and tests.
        #[arg(long, hide = true, value_name = "UNIX")]
        at: Option<i64>,
    },
}

/// Runs `relayguard schedule`.
pub async fn schedule(args: ScheduleArgs, database: &str) -> anyhow::Result<u8> {
    let pool = connect(database, std::time::Duration::from_secs(60)).await?;
    match args.command {
        ScheduleCommand::Add { name, cron, sweep } => {
            let parsed = parse_cron(&cron)?;
            // Checked now, so a bad target fails here and not at 03:00.
            crate::sweep_cmd::setup::prepare(&sweep).await?;
            let argv: Vec<String> = std::env::args().skip(1).collect();
            let added = sqlx::query(
                "INSERT INTO queue_schedules (name, cron, sweep_args, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&name)
            .bind(&cron)
            .bind(serde_json::to_string(&argv)?)
            .bind(Utc::now().timestamp())
            .execute(&pool)
            .await?
            .rows_affected();
            if added == 0 {
                bail!("a schedule named {name:?} exists already");
            }
            let next = parsed
                .upcoming(Utc)
                .next()
                .map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
            println!("schedule {name} added; next slot {next}");
            Ok(0)
        }
        ScheduleCommand::List => {
            let rows = sqlx::query(
                "SELECT s.name, s.cron, max(r.slot), \
                   (SELECT sweep_id FROM queue_schedule_slots WHERE name = s.name \
                    ORDER BY slot DESC LIMIT 1) \
                 FROM queue_schedules s LEFT JOIN queue_schedule_slots r ON r.name = s.name \
                 GROUP BY s.name, s.cron ORDER BY s.name",
            )
            .fetch_all(&pool)
            .await?;
            for r in rows {
                let name: String = r.try_get(0)?;
                let cron: String = r.try_get(1)?;
                let last: Option<i64> = r.try_get(2)?;
                let sweep: Option<i64> = r.try_get(3)?;
                let last = last
                    .and_then(|t| DateTime::from_timestamp(t, 0))
                    .map_or_else(|| "-".to_string(), |t| t.to_rfc3339());
                let sweep = sweep.map_or_else(|| "-".to_string(), |s| format!("sweep {s}"));
                println!("{name}\t{cron}\tlast slot {last}\t{sweep}");
            }
            Ok(0)
        }
        ScheduleCommand::Remove { name } => {
            let removed = sqlx::query("DELETE FROM queue_schedules WHERE name = $1")
                .bind(&name)
                .execute(&pool)
                .await?
                .rows_affected();
            if removed == 0 {
                bail!("no schedule named {name:?}");
            }
            println!("schedule {name} removed");
            Ok(0)
        }
        ScheduleCommand::RunDue { at } => {
            let at = at.unwrap_or_else(|| Utc::now().timestamp());
            for fired in fire_due(&pool, at).await? {
                println!(
                    "schedule {}: slot {} planned as sweep {}",
                    fired.name, fired.slot, fired.sweep
                );
            }
            Ok(0)
        }
    }
}

/// Fires the due slots every `every`, for as long as the process runs, saying on stderr what it
/// planned; an error (the database restarting) is reported and the next round tries again.
pub async fn run_scheduler(pool: PgPool, every: std::time::Duration) {
    loop {
        match fire_due(&pool, Utc::now().timestamp()).await {
            Ok(fired) => {
                for f in fired {
                    eprintln!(
                        "relayguard: schedule {}: slot {} planned as sweep {}",
                        f.name, f.slot, f.sweep
                    );
                }
            }
            Err(e) => eprintln!("relayguard: the scheduler: {e:#}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// How often `relayguard serve` runs the scheduler: `RELAYGUARD_SCHEDULE_EVERY` seconds, 10 by
/// default (a worker runs it every heartbeat).
pub fn serve_interval() -> std::time::Duration {
    let secs = std::env::var("RELAYGUARD_SCHEDULE_EVERY")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(10);
    std::time::Duration::from_secs(secs)
}

/// Starts the scheduler beside `relayguard serve` when the registry is on PostgreSQL (where the
/// schedules live); on SQLite there is no queue and nothing to start.
pub async fn spawn_for_serve(database: &str) -> anyhow::Result<()> {
    if !(database.starts_with("postgres://") || database.starts_with("postgresql://")) {
        return Ok(());
    }
    let pool = connect(database, std::time::Duration::from_secs(60)).await?;
    eprintln!("relayguard: serve runs the sweep scheduler");
    tokio::spawn(run_scheduler(pool, serve_interval()));
    Ok(())
}

/// A slot this process fired.
#[derive(Debug)]
pub struct Fired {
    /// The schedule.
    pub name: String,
    /// The slot (Unix seconds).
    pub slot: i64,
    /// The queued sweep it planned.
    pub sweep: i64,
}

/// Fires, for each schedule, the latest slot at or before `at` that no process fired yet.
pub async fn fire_due(pool: &PgPool, at: i64) -> anyhow::Result<Vec<Fired>> {
    let rows = sqlx::query(
        "SELECT s.name, s.cron, s.sweep_args, s.created_at, max(r.slot) \
         FROM queue_schedules s LEFT JOIN queue_schedule_slots r ON r.name = s.name \
         GROUP BY s.name, s.cron, s.sweep_args, s.created_at ORDER BY s.name",
    )
    .fetch_all(pool)
    .await?;
    let mut fired = Vec::new();
    for r in rows {
        let name: String = r.try_get(0)?;
        let cron: String = r.try_get(1)?;
        let argv: Vec<String> = serde_json::from_str(r.try_get::<&str, _>(2)?)?;
        let created: i64 = r.try_get(3)?;
        let last: Option<i64> = r.try_get(4)?;
        let from = last.unwrap_or(created).max(created);
        let Some(slot) = latest_slot(&parse_cron(&cron)?, from, at) else {
            continue;
        };
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO queue_schedule_slots (name, slot, fired_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name, slot) DO NOTHING",
        )
        .bind(&name)
        .bind(slot)
        .bind(Utc::now().timestamp())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            // Another process fired this slot.
            continue;
        }
        let (mut args, _) = recorded_sweep_args(argv.clone())?;
        args.queue = true;
        let planned = plan_in(&mut tx, &args, argv)
            .await
            .with_context(|| format!("planning schedule {name}"))?;
        sqlx::query("UPDATE queue_schedule_slots SET sweep_id = $3 WHERE name = $1 AND slot = $2")
            .bind(&name)
            .bind(slot)
            .bind(planned.sweep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        fired.push(Fired {
            name,
            slot,
            sweep: planned.sweep,
        });
    }
    Ok(fired)
}

/// The latest slot after `from` and at or before `at`.
fn latest_slot(schedule: &cron::Schedule, from: i64, at: i64) -> Option<i64> {
    let from = DateTime::from_timestamp(from, 0)?;
    schedule
        .after(&from)
        .take(MAX_SLOTS_SCANNED)
        .map(|t| t.timestamp())
        .take_while(|t| *t <= at)
        .last()
}

/// Parses a cron expression of five fields (minute first) or six or seven (seconds first).
fn parse_cron(text: &str) -> anyhow::Result<cron::Schedule> {
    let fields = text.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {text}")
    } else {
        text.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| anyhow::anyhow!("--cron {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_missed_slot_is_due() {
        let daily = parse_cron("0 3 * * *").unwrap();
        // 2026-12-01 00:00 UTC; three 03:00 slots passed by 2026-12-03 12:00.
        let from = 1_796_083_200;
        let at = from + 2 * 86_400 + 12 * 3600;
        assert_eq!(
            latest_slot(&daily, from, at),
            Some(from + 2 * 86_400 + 3 * 3600)
        );
        // Nothing due before the first slot, and a fired slot is not due again.
        assert_eq!(latest_slot(&daily, from, from + 3600), None);
        let fired = from + 3 * 3600;
        assert_eq!(latest_slot(&daily, fired, fired + 60), None);
    }

    #[test]
    fn bad_cron_expressions_are_refused() {
        assert!(parse_cron("0 3 * *").is_err());
        assert!(parse_cron("99 * * * *").is_err());
        assert!(parse_cron("*/10 * * * * *").is_ok());
    }
}
