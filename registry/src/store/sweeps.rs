//! Sweeps (one run of the scanner) and their raw observations in the store.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::{Store, get_i64, get_str};
use crate::error::{Error, Result};
use crate::model::{canonical_ip, parse_text};

/// What a sweep was: where from, what it aimed at, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepMeta {
    /// Name of the vantage point (e.g. `campus-core`, `outside-vps`).
    pub vantage: String,
    /// The targets as given: CIDRs, addresses, `A-B` ranges or host names.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Ports probed; empty means "the ports present in the results, else 25".
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Start, seconds since the Unix epoch.
    pub started_at: i64,
    /// End, seconds since the Unix epoch.
    pub finished_at: i64,
}

impl SweepMeta {
    /// Checks the fields a remote client sent.
    pub fn validate(&self) -> Result<()> {
        parse_text("vantage", &self.vantage, true)?;
        if self.finished_at < self.started_at {
            return Err(Error::Invalid(
                "sweep finished_at is before started_at".into(),
            ));
        }
        if self.targets.len() > 100_000 || self.targets.iter().any(|t| t.len() > 255) {
            return Err(Error::Invalid(
                "too many sweep targets, or a target longer than 255 characters".into(),
            ));
        }
        if self.ports.contains(&0) {
            return Err(Error::Invalid("port 0 is not a valid sweep port".into()));
        }
        Ok(())
    }
}

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
}

pub(crate) fn sweep_from_row(r: &AnyRow) -> Result<SweepRow> {
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
    })
}

pub(crate) const SWEEP_COLUMNS: &str = "id, vantage, targets, ports, started_at, finished_at, recorded_at, results, \
    open_ports, smtp_listeners, findings_opened, findings_resolved";

impl Store {
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

    /// The raw results stored for `address`, newest sweep first (at most `limit`).
    pub async fn observations_for(
        &self,
        address: &str,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>> {
        let rows = sqlx::query("SELECT sweep_id, result FROM observations WHERE address = $1 ORDER BY sweep_id DESC, port LIMIT $2")
            .bind(address.to_string())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get_i64(r, "sweep_id")?,
                    serde_json::from_str(&get_str(r, "result")?).unwrap_or_default(),
                ))
            })
            .collect()
    }
}

/// Which addresses and ports a sweep looked at: a finding there that the sweep did not see again
/// is gone, a finding elsewhere is simply not known about.
#[derive(Debug, Default)]
pub struct Coverage {
    nets: Vec<IpNet>,
    ranges: Vec<(IpAddr, IpAddr)>,
    seen: HashSet<IpAddr>,
    ports: Vec<u16>,
}

impl Coverage {
    /// Builds the coverage from the targets, the ports and the addresses that have results.
    /// Host-name targets cover exactly the addresses they resolved to, which the results carry.
    pub fn new(meta: &SweepMeta, results: &[relayguard_core::scan::HostResult]) -> Coverage {
        let mut c = Coverage::default();
        for t in &meta.targets {
            let t = t.trim();
            if let Ok(n) = t.parse::<IpNet>() {
                c.nets.push(n);
            } else if let Ok(a) = t.parse::<IpAddr>() {
                c.nets.push(IpNet::from(canonical_ip(a)));
            } else if let Some((a, b)) = t.split_once('-')
                && let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>())
            {
                c.ranges.push((a, b));
            }
        }
        c.seen = results.iter().map(|r| canonical_ip(r.address)).collect();
        c.ports = if meta.ports.is_empty() {
            let mut p: Vec<u16> = results.iter().map(|r| r.port).collect();
            p.sort_unstable();
            p.dedup();
            if p.is_empty() { vec![25] } else { p }
        } else {
            meta.ports.clone()
        };
        c
    }

    /// The ports the sweep probed.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether the sweep looked at `address` at all (any port).
    pub fn covers_address(&self, address: IpAddr) -> bool {
        let a = canonical_ip(address);
        self.seen.contains(&a)
            || self.nets.iter().any(|n| n.contains(&a))
            || self.ranges.iter().any(|(lo, hi)| lo <= &a && &a <= hi)
    }

    /// Whether the sweep looked at `port` on `address`.
    pub fn covers(&self, address: IpAddr, port: u16) -> bool {
        self.ports.contains(&port) && self.covers_address(address)
    }
}
