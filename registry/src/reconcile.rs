//! Reconciliation: turning sweep observations, registrations and agent reports into findings.
//!
//! Keys are (address, port, kind). A sweep-sourced finding is resolved only by a later sweep that
//! *covered* its address and port and no longer saw it: a sweep of another block says nothing.
//! Registry-level kinds ([`REGISTRATION_STALE`], [`REGISTRATION_EXPIRED`]) and the agent kind
//! ([`MTA_ENABLED_ON_NON_MAIL_HOST`]) are strings here because core's `FindingKind` lacks them.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use relayguard_core::agent_report::AgentReport;
use relayguard_core::scan::{HostResult, PortState};
use relayguard_core::{FindingKind, Severity};
use serde_json::json;
use time::Date;

use crate::error::Result;
use crate::model::{Host, HostStatus, Role, canonical_ip, now_unix, today};
use crate::store::findings::{NewFinding, open_from_source, resolve_id, resolve_key, upsert_open};
use crate::store::sweeps::{Coverage, SWEEP_COLUMNS, sweep_from_row};
use crate::store::{FindingSource, Store, SweepMeta, SweepRow};

/// A registered mail server that did not answer SMTP in the last two sweeps that covered it.
pub const REGISTRATION_STALE: &str = "registration-stale";
/// A registration whose periodic review is overdue.
pub const REGISTRATION_EXPIRED: &str = "registration-expired";
/// A host registered as non-mail whose agent reports a listening MTA enabled at boot or running.
pub const MTA_ENABLED_ON_NON_MAIL_HOST: &str = "mta-enabled-on-non-mail-host";
/// Consecutive covering sweeps without a listener before a registration counts as stale.
pub const STALE_AFTER_MISSES: i64 = 2;
/// The port registry-level findings about SMTP service use.
const SMTP_PORT: i64 = 25;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Records a sweep and its results, and reconciles them into findings, in one transaction:
/// either the whole sweep is stored and reconciled or nothing is.
pub async fn record_sweep(
    store: &Store,
    meta: &SweepMeta,
    results: &[HostResult],
) -> Result<SweepRow> {
    meta.validate()?;
    let now = now_unix();
    let coverage = Coverage::new(meta, results);
    let mut tx = store.begin_write().await?;

    let id: i64 = {
        use sqlx::Row;
        let row = sqlx::query(
            "INSERT INTO sweeps (vantage, targets, ports, started_at, finished_at, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(meta.vantage.trim().to_string())
        .bind(serde_json::to_string(&meta.targets).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(coverage.ports()).unwrap_or_else(|_| "[]".into()))
        .bind(meta.started_at)
        .bind(meta.finished_at)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        row.try_get::<i64, _>(0)?
    };

    for r in results {
        sqlx::query(
            "INSERT INTO observations (sweep_id, address, port, state, mta, banner, ptr, result) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (sweep_id, address, port) DO NOTHING",
        )
        .bind(id)
        .bind(canonical_ip(r.address).to_string())
        .bind(i64::from(r.port))
        .bind(r.state.as_str())
        .bind(r.smtp.as_ref().map(|s| s.mta.clone()))
        .bind(r.smtp.as_ref().map(|s| s.banner.clone()))
        .bind(r.ptr.clone())
        .bind(serde_json::to_string(r).unwrap_or_else(|_| "{}".into()))
        .execute(&mut *tx)
        .await?;
    }

    let hosts = load_hosts(&mut tx).await?;
    let mut seen: HashSet<(String, i64, String)> = HashSet::new();
    let mut opened = 0i64;
    let mut listening: HashSet<IpAddr> = HashSet::new();

    for r in results {
        let ip = canonical_ip(r.address);
        let address = ip.to_string();
        let port = i64::from(r.port);
        let mut wanted: Vec<NewFinding> = r
            .findings
            .iter()
            .map(|f| NewFinding {
                address: address.clone(),
                port,
                kind: f.kind.id().to_string(),
                source: FindingSource::Sweep,
                severity: f.severity,
                summary: f.summary.clone(),
                evidence: serde_json::to_value(&f.evidence).unwrap_or_default(),
            })
            .collect();
        if r.state == PortState::Open && r.smtp.is_some() {
            listening.insert(ip);
            let banner = r
                .smtp
                .as_ref()
                .map(|s| s.banner.clone())
                .unwrap_or_default();
            let evidence = json!({ "sweep": id, "banner": banner, "ptr": r.ptr });
            match hosts.get(&address).filter(|h| h.status == HostStatus::Active) {
                None => wanted.push(NewFinding {
                    address: address.clone(),
                    port,
                    kind: FindingKind::UnregisteredMta.id().into(),
                    source: FindingSource::Sweep,
                    severity: FindingKind::UnregisteredMta.default_severity(),
                    summary: format!("SMTP listener on {address} port {port}, which has no active mail registration"),
                    evidence,
                }),
                Some(h) if h.role == Role::NonMail => wanted.push(NewFinding {
                    address: address.clone(),
                    port,
                    kind: FindingKind::NonMailHostListening.id().into(),
                    source: FindingSource::Sweep,
                    severity: FindingKind::NonMailHostListening.default_severity(),
                    summary: format!("{} ({address}) is registered as non-mail but answers SMTP on port {port}", h.hostname),
                    evidence,
                }),
                Some(_) => {}
            }
        }
        // The scanner may report the same kind twice for one port; one row per key is enough.
        for f in wanted {
            if seen.insert((f.address.clone(), f.port, f.kind.clone()))
                && upsert_open(&mut tx, &f, now, Some(id)).await?
            {
                opened += 1;
            }
        }
    }

    // Anything open from earlier sweeps, on an address and port this sweep covered, that this
    // sweep did not see again, is gone.
    let mut resolved = 0i64;
    for (fid, address, port, kind) in open_from_source(&mut tx, FindingSource::Sweep).await? {
        let Ok(ip) = address.parse::<IpAddr>() else {
            continue;
        };
        let Ok(p) = u16::try_from(port) else { continue };
        if coverage.covers(ip, p) && !seen.contains(&(address.clone(), port, kind)) {
            resolve_id(&mut tx, fid, now).await?;
            resolved += 1;
        }
    }

    // Registered mail servers: count consecutive covering sweeps without a listener.
    for h in hosts.values() {
        let Ok(ip) = h.address.parse::<IpAddr>() else {
            continue;
        };
        if h.status != HostStatus::Active
            || !h.role.is_mail()
            || !coverage.covers(ip, SMTP_PORT as u16)
        {
            continue;
        }
        if listening.contains(&ip) {
            sqlx::query(
                "UPDATE hosts SET missed_sweeps = 0, last_listening_at = $1 WHERE address = $2",
            )
            .bind(now)
            .bind(h.address.clone())
            .execute(&mut *tx)
            .await?;
            if resolve_key(&mut tx, &h.address, SMTP_PORT, REGISTRATION_STALE, now).await? {
                resolved += 1;
            }
        } else {
            let row = sqlx::query("UPDATE hosts SET missed_sweeps = missed_sweeps + 1 WHERE address = $1 RETURNING missed_sweeps")
                .bind(h.address.clone())
                .fetch_one(&mut *tx)
                .await?;
            let misses: i64 = sqlx::Row::try_get(&row, 0)?;
            if misses >= STALE_AFTER_MISSES {
                let f = NewFinding {
                    address: h.address.clone(),
                    port: SMTP_PORT,
                    kind: REGISTRATION_STALE.into(),
                    source: FindingSource::Registry,
                    severity: Severity::Low,
                    summary: format!(
                        "{} ({}) is registered as {} but did not answer SMTP in the last {misses} sweeps that covered it",
                        h.hostname, h.address, h.role
                    ),
                    evidence: json!({ "missed_sweeps": misses, "sweep": id }),
                };
                if upsert_open(&mut tx, &f, now, Some(id)).await? {
                    opened += 1;
                }
            }
        }
    }

    let (o, r) = refresh_registration_findings(&mut tx, now, today()).await?;
    opened += o;
    resolved += r;

    let open_ports = results
        .iter()
        .filter(|r| r.state == PortState::Open)
        .count() as i64;
    let smtp = results.iter().filter(|r| r.smtp.is_some()).count() as i64;
    sqlx::query(
        "UPDATE sweeps SET results = $1, open_ports = $2, smtp_listeners = $3, findings_opened = $4, findings_resolved = $5 WHERE id = $6",
    )
    .bind(results.len() as i64)
    .bind(open_ports)
    .bind(smtp)
    .bind(opened)
    .bind(resolved)
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

/// Brings the registry-level findings in line with the registrations as of `today`:
/// overdue reviews open [`REGISTRATION_EXPIRED`]; reviewed, retired or removed ones resolve it;
/// staleness is dropped for registrations that are no longer active mail servers.
/// Returns (opened, resolved).
pub(crate) async fn refresh_registration_findings(
    tx: &mut Tx,
    now: i64,
    today: Date,
) -> Result<(i64, i64)> {
    let hosts = load_hosts(tx).await?;
    let (mut opened, mut resolved) = (0, 0);
    for h in hosts.values() {
        if h.status == HostStatus::Active && h.review_overdue(today) {
            let due = h
                .review_due()
                .map(crate::model::format_date)
                .unwrap_or_default();
            let f = NewFinding {
                address: h.address.clone(),
                port: 0,
                kind: REGISTRATION_EXPIRED.into(),
                source: FindingSource::Registry,
                severity: Severity::Low,
                summary: format!(
                    "registration of {} ({}) was due for review on {due}",
                    h.hostname, h.address
                ),
                evidence: json!({ "reviewed_on": h.reviewed_on, "review_months": h.review_months, "due": due }),
            };
            if upsert_open(tx, &f, now, None).await? {
                opened += 1;
            }
        } else if resolve_key(tx, &h.address, 0, REGISTRATION_EXPIRED, now).await? {
            resolved += 1;
        }
        if (h.status != HostStatus::Active || !h.role.is_mail())
            && resolve_key(tx, &h.address, SMTP_PORT, REGISTRATION_STALE, now).await?
        {
            resolved += 1;
        }
    }
    for (fid, address, _, _) in open_from_source(tx, FindingSource::Registry).await? {
        if !hosts.contains_key(&address) {
            resolve_id(tx, fid, now).await?;
            resolved += 1;
        }
    }
    Ok((opened, resolved))
}

/// Updates the agent-derived finding of a host from a newly stored report.
pub(crate) async fn apply_agent_report(
    tx: &mut Tx,
    address: &str,
    report: &AgentReport,
    now: i64,
) -> Result<()> {
    let hosts = load_hosts(tx).await?;
    let (enabled, live) = crate::store::agents_flags(report);
    let non_mail = hosts
        .get(address)
        .is_some_and(|h| h.role == Role::NonMail && h.status == HostStatus::Active);
    if non_mail && (enabled || live) {
        let mtas: Vec<&str> = report
            .check
            .findings
            .iter()
            .filter(|f| f.mta.listens())
            .map(|f| f.mta.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let f = NewFinding {
            address: address.to_string(),
            port: 0,
            kind: MTA_ENABLED_ON_NON_MAIL_HOST.into(),
            source: FindingSource::Agent,
            severity: Severity::Medium,
            summary: format!(
                "agent on {address} reports {} {} on a host registered as non-mail",
                mtas.join(", "),
                if live { "running" } else { "enabled at boot" }
            ),
            evidence: json!({ "agent_version": report.agent_version, "generated_at": report.generated_at,
                               "facts": report.check.findings }),
        };
        upsert_open(tx, &f, now, None).await?;
    } else {
        resolve_key(tx, address, 0, MTA_ENABLED_ON_NON_MAIL_HOST, now).await?;
    }
    Ok(())
}

async fn load_hosts(tx: &mut Tx) -> Result<HashMap<String, Host>> {
    use crate::store::get_host_rows;
    Ok(get_host_rows(tx)
        .await?
        .into_iter()
        .map(|h| (h.address.clone(), h))
        .collect())
}
