//! Sweeps (one run of the scanner) and their raw observations in the store.

use relayguard_core::SweepMeta;
use relayguard_core::scan::{HostResult, PortState};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::apply::{apply_in, load_snapshot};
use super::keyset::{self, Arg, Page, PageRequest, Where};
use super::{Store, get_i64, get_str};
use crate::error::{Error, Result};
use crate::model::{canonical_ip, now_unix, today, validate_sweep_meta};
use crate::reconcile::{Coverage, Held, reconcile};

/// A recorded sweep with its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Sweep number.
    pub id: i64,
    /// Vantage point name.
    pub vantage: String,
    /// Targets as given.
    pub targets: Vec<String>,
    /// Ports covered.
    pub ports: Vec<u16>,
    /// Start (Unix seconds).
    pub started_at: i64,
    /// End (Unix seconds).
    pub finished_at: i64,
    /// When the registry stored it (Unix seconds).
    pub recorded_at: i64,
    /// Number of host results.
    pub results: i64,
    /// Results with the port open.
    pub open_ports: i64,
    /// Results that spoke SMTP.
    pub smtp_listeners: i64,
    /// Findings opened or reopened by this sweep.
    pub findings_opened: i64,
    /// Findings resolved by this sweep.
    pub findings_resolved: i64,
    /// Why findings the sweep covered but could not judge stay open, one line each.
    #[serde(default)]
    pub notes: Vec<String>,
}

fn sweep_from_row(r: &AnyRow) -> Result<SweepRow> {
    Ok(SweepRow {
        id: get_i64(r, "id")?,
        vantage: get_str(r, "vantage")?,
        targets: serde_json::from_str(&get_str(r, "targets")?).unwrap_or_default(),
        ports: serde_json::from_str(&get_str(r, "ports")?).unwrap_or_default(),
        started_at: get_i64(r, "started_at")?,
        finished_at: get_i64(r, "finished_at")?,
        recorded_at: get_i64(r, "recorded_at")?,
        results: get_i64(r, "results")?,
        open_ports: get_i64(r, "open_ports")?,
        smtp_listeners: get_i64(r, "smtp_listeners")?,
        findings_opened: get_i64(r, "findings_opened")?,
        findings_resolved: get_i64(r, "findings_resolved")?,
        notes: serde_json::from_str(&get_str(r, "notes")?).unwrap_or_default(),
    })
}

const SWEEP_COLUMNS: &str = "id, vantage, targets, ports, started_at, finished_at, recorded_at, results, \
    open_ports, smtp_listeners, findings_opened, findings_resolved, notes";

impl Store {
    /// Records a sweep and its results, and reconciles them into findings, in one transaction:
    /// either the whole sweep is stored and reconciled or nothing is.
    pub async fn record_sweep(&self, meta: &SweepMeta, results: &[HostResult]) -> Result<SweepRow> {
        self.record_sweep_each(
            meta,
            results
                .iter()
                .cloned()
                .map(Ok::<_, std::convert::Infallible>),
        )
        .await
    }

    /// [`Store::record_sweep`] for results that come one at a time (read back from a file, say):
    /// each result's observation is written as it comes and only what reconciliation reads of
    /// it is kept (not its transcript, most of its size), so the memory this takes is that of
    /// one whole result and the rest of the sweep's findings and tests. A result that fails to
    /// come (`Err`) rolls the whole sweep back.
    pub async fn record_sweep_each<E: std::fmt::Display>(
        &self,
        meta: &SweepMeta,
        results: impl IntoIterator<Item = std::result::Result<HostResult, E>>,
    ) -> Result<SweepRow> {
        validate_sweep_meta(meta)?;
        let now = now_unix();
        let mut tx = self.begin_write().await?;

        // The ports are set with the counts below: without --ports in the metadata they are
        // those of the results, which are not all read yet.
        let id: i64 = sqlx::query(
            "INSERT INTO sweeps (vantage, targets, ports, started_at, finished_at, recorded_at) \
             VALUES ($1, $2, '[]', $3, $4, $5) RETURNING id",
        )
        .bind(meta.vantage.trim().to_string())
        .bind(serde_json::to_string(&meta.targets).unwrap_or_else(|_| "[]".into()))
        .bind(meta.started_at)
        .bind(meta.finished_at)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>(0)?;

        // Read first (it does not depend on this sweep's rows), so that each result is kept for
        // reconciliation with only what it reads: no transcript, and tests only where an open
        // finding depends on them.
        let snapshot = load_snapshot(
            &mut tx,
            self.rules.clone(),
            today(),
            Some(id),
            Some(meta.vantage.trim()),
        )
        .await?;
        let judged = snapshot.ports_judged_by_tests();
        let mut kept = Vec::new();
        for r in results {
            let mut r =
                r.map_err(|e| Error::Invalid(format!("reading the sweep's results: {e}")))?;
            let address = canonical_ip(r.address).to_string();
            // A filtered port gave no answer: the sweep's targets record that it was looked
            // at, and a row per silent address would be nine in ten of a campus sweep's rows.
            if r.state != PortState::Filtered {
                sqlx::query(
                    "INSERT INTO observations (sweep_id, address, port, state, mta, banner, ptr, result) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (sweep_id, address, port) DO NOTHING",
                )
                .bind(id)
                .bind(address.clone())
                .bind(i64::from(r.port))
                .bind(r.state.as_str())
                .bind(r.smtp.as_ref().map(|s| s.mta.clone()))
                .bind(r.smtp.as_ref().map(|s| s.banner.clone()))
                .bind(r.ptr.clone())
                .bind(serde_json::to_string(&r).unwrap_or_else(|_| "{}".into()))
                .execute(&mut *tx)
                .await?;
            }
            r.transcript = Default::default();
            if !judged.contains(&(address.as_str(), i64::from(r.port))) {
                r.tests = Vec::new();
            }
            kept.push(r);
        }
        let results = kept.as_slice();
        let coverage = Coverage::new(meta, results);

        let changes = reconcile(&snapshot, results, &coverage);
        let applied = apply_in(&mut tx, &changes, now).await?;

        let open_ports = results
            .iter()
            .filter(|r| r.state == PortState::Open)
            .count() as i64;
        let smtp = results.iter().filter(|r| r.smtp.is_some()).count() as i64;
        sqlx::query(
            "UPDATE sweeps SET results = $1, open_ports = $2, smtp_listeners = $3, findings_opened = $4, findings_resolved = $5, \
             notes = $6, ports = $7 WHERE id = $8",
        )
        .bind(results.len() as i64)
        .bind(open_ports)
        .bind(smtp)
        .bind(applied.opened)
        .bind(applied.resolved)
        .bind(
            serde_json::to_string(&changes.held.iter().map(Held::note).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".into()),
        )
        .bind(serde_json::to_string(coverage.ports()).unwrap_or_else(|_| "[]".into()))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let sql = format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let out = sweep_from_row(&row)?;
        tx.commit().await?;
        Ok(out)
    }

    /// All sweeps, newest first.
    pub async fn list_sweeps(&self) -> Result<Vec<SweepRow>> {
        let sql = format!("SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(sweep_from_row).collect()
    }

    /// One sweep.
    pub async fn get_sweep(&self, id: i64) -> Result<Option<SweepRow>> {
        let sql = format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(sweep_from_row).transpose()
    }

    /// What the sweeps saw at `address`, newest sweep first (at most `limit`).
    pub async fn observations_for(&self, address: &str, limit: i64) -> Result<Vec<Observation>> {
        let rows = sqlx::query(
            "SELECT sweep_id, port, state, mta, banner, ptr, result FROM observations \
             WHERE address = $1 ORDER BY sweep_id DESC, port LIMIT $2",
        )
        .bind(address.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Observation {
                    sweep_id: get_i64(r, "sweep_id")?,
                    port: get_i64(r, "port")?,
                    state: get_str(r, "state")?,
                    mta: r.try_get::<Option<String>, _>("mta")?,
                    banner: r.try_get::<Option<String>, _>("banner")?,
                    ptr: r.try_get::<Option<String>, _>("ptr")?,
                    result: serde_json::from_str(&get_str(r, "result")?).ok(),
                })
            })
            .collect()
    }
}

/// One host result of one sweep as the store keeps it: the columns pages list, and the whole
/// result when it reads back.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The sweep that saw it.
    pub sweep_id: i64,
    /// The port.
    pub port: i64,
    /// `open`, `closed`, `filtered`.
    pub state: String,
    /// The MTA the banner and EHLO were recognised as.
    pub mta: Option<String>,
    /// The greeting.
    pub banner: Option<String>,
    /// The PTR name.
    pub ptr: Option<String>,
    /// The full result; `None` when it was written by a version whose format no longer reads.
    pub result: Option<HostResult>,
}

/// Which sweeps the sweeps list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepFilter {
    /// Only sweeps from this vantage point.
    pub vantage: Option<String>,
    /// Only sweeps started at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Only sweeps started before this time (Unix seconds).
    pub before: Option<i64>,
}

impl Store {
    /// One page of sweeps matching `filter`, newest first (keyset on the id).
    pub async fn sweeps_page(
        &self,
        filter: &SweepFilter,
        req: &PageRequest,
    ) -> Result<Page<SweepRow>> {
        let scope = format!(
            "sweeps {}",
            serde_json::to_string(filter).unwrap_or_default()
        );
        let mut w = Where::default();
        if let Some(v) = &filter.vantage {
            w.and("vantage = ?", [Arg::Text(v.trim().to_string())]);
        }
        if let Some(t) = filter.since {
            w.and("started_at >= ?", [Arg::Int(t)]);
        }
        if let Some(t) = filter.before {
            w.and("started_at < ?", [Arg::Int(t)]);
        }
        if let Some(c) = &req.after {
            let k = keyset::decode(&scope, c, 1)?;
            w.and("id < ?", [Arg::Int(keyset::int(&k[0])?)]);
        }
        let sql = format!("SELECT {SWEEP_COLUMNS} FROM sweeps");
        let rows = w
            .query(&sql, "id DESC", req.limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut rows: Vec<SweepRow> = rows.iter().map(sweep_from_row).collect::<Result<_>>()?;
        let next = if rows.len() as i64 > req.limit {
            rows.truncate(req.limit as usize);
            rows.last().map(|s| keyset::encode(&scope, &[s.id.into()]))
        } else {
            None
        };
        Ok(Page { rows, next })
    }
}
