//! The figures `/metrics` exposes, read in one pass over the store.

use sqlx::Row;

use super::{Store, get_i64, get_str};
use crate::error::Result;

/// What the registry knows, as numbers for monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Open findings per (kind, severity).
    pub open_findings: Vec<(String, String, i64)>,
    /// Findings opened or reopened by sweeps, over all sweeps.
    pub findings_opened_total: i64,
    /// Findings resolved by sweeps, over all sweeps.
    pub findings_resolved_total: i64,
    /// The latest sweep of each vantage.
    pub vantages: Vec<VantageSweep>,
    /// Each enrolled host's newest agent report time (Unix seconds).
    pub agent_last_report: Vec<(String, i64)>,
    /// Digests delivered by notify.
    pub notices_sent_total: i64,
    /// Digests notify failed to deliver.
    pub notify_failures_total: i64,
}

/// The latest sweep recorded from one vantage point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VantageSweep {
    /// The vantage point's name.
    pub vantage: String,
    /// When it finished (Unix seconds).
    pub finished_at: i64,
    /// How long it ran (seconds).
    pub duration_seconds: i64,
    /// Host results it recorded (the ports it looked at).
    pub results: i64,
    /// Of those, open ports.
    pub open_ports: i64,
}

impl Store {
    /// Reads every figure `/metrics` shows.
    pub async fn metrics_snapshot(&self) -> Result<MetricsSnapshot> {
        let pool = self.pool();
        let open_findings = sqlx::query(
            "SELECT kind, severity, COUNT(*) AS n FROM findings WHERE status = 'open' \
             GROUP BY kind, severity ORDER BY kind, severity",
        )
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                get_str(r, "kind")?,
                get_str(r, "severity")?,
                get_i64(r, "n")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
        // SUM is NUMERIC on PostgreSQL: cast it back to a 64-bit integer for both backends.
        let totals = sqlx::query(
            "SELECT CAST(COALESCE(SUM(findings_opened), 0) AS BIGINT) AS opened, \
             CAST(COALESCE(SUM(findings_resolved), 0) AS BIGINT) AS resolved FROM sweeps",
        )
        .fetch_one(pool)
        .await?;
        let vantages = sqlx::query(
            "SELECT s.vantage, s.started_at, s.finished_at, s.results, s.open_ports FROM sweeps s \
             WHERE s.id = (SELECT MAX(id) FROM sweeps t WHERE t.vantage = s.vantage) ORDER BY s.vantage",
        )
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            let started = get_i64(r, "started_at")?;
            let finished = get_i64(r, "finished_at")?;
            Ok(VantageSweep {
                vantage: get_str(r, "vantage")?,
                finished_at: finished,
                duration_seconds: (finished - started).max(0),
                results: get_i64(r, "results")?,
                open_ports: get_i64(r, "open_ports")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let agent_last_report = sqlx::query(
            "SELECT address, MAX(received_at) AS last FROM agent_reports GROUP BY address ORDER BY address",
        )
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((get_str(r, "address")?, get_i64(r, "last")?)))
        .collect::<Result<Vec<_>>>()?;
        let count = |table: &'static str| async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM {table}"
            )))
            .fetch_one(pool)
            .await?;
            get_i64(&row, "n")
        };
        Ok(MetricsSnapshot {
            open_findings,
            findings_opened_total: totals.try_get("opened")?,
            findings_resolved_total: totals.try_get("resolved")?,
            vantages,
            agent_last_report,
            notices_sent_total: count("notices").await?,
            notify_failures_total: count("notify_failures").await?,
        })
    }
}
