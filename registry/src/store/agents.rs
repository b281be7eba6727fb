//! Agent enrollment tokens (stored hashed) and agent reports in the store.

use relayguard_core::agent_report::AgentReport;
use serde::{Deserialize, Serialize};

use super::apply::{apply_in, load_snapshot};
use super::keyset::{self, Arg, Page, PageRequest, Where};
use super::{Store, get_i64, get_str};
use crate::error::{Error, Result};
use crate::model::{now_unix, parse_address, today};
use crate::reconcile::{agent_report_with, report_flags};
use crate::token;

/// One stored agent report (summary columns plus the full body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReportRow {
    /// The report's id (idempotency key).
    pub report_id: String,
    /// The host it is about.
    pub address: String,
    /// When the registry received it (Unix seconds).
    pub received_at: i64,
    /// When the agent made it (Unix seconds).
    pub generated_at: i64,
    /// Host name the agent reported.
    pub hostname: String,
    /// Agent version.
    pub agent_version: String,
    /// Whether an MTA that listens is enabled at boot.
    pub mta_enabled: bool,
    /// Whether an MTA is running or listening right now.
    pub mta_listening: bool,
    /// Number of hardening actions taken in this run.
    pub actions: i64,
    /// The whole report.
    pub report: serde_json::Value,
}

/// What happened to a submitted report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Stored for the first time.
    Stored,
    /// The same report id with the same body was already stored: nothing changed.
    Duplicate,
}

impl Store {
    /// Creates (or replaces) the agent token of a registered host and returns the secret once;
    /// only its SHA-256 is stored.
    pub async fn create_agent_token(&self, address: &str) -> Result<String> {
        let address = parse_address(address)?;
        if self.get_host(&address).await?.is_none() {
            return Err(Error::NotFound(format!("host {address}")));
        }
        let secret = token::generate("rga")?;
        sqlx::query(
            "INSERT INTO agent_tokens (address, token_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (address) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
        )
        .bind(address)
        .bind(token::hash_hex(&secret))
        .bind(now_unix())
        .execute(&self.pool)
        .await?;
        Ok(secret)
    }

    /// The host address an agent token belongs to, if it is valid.
    pub async fn agent_for_token(&self, secret: &str) -> Result<Option<String>> {
        let hash = token::hash_hex(secret);
        let row = sqlx::query("SELECT address, token_hash FROM agent_tokens WHERE token_hash = $1")
            .bind(hash.clone())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            // The lookup is by hash (an index probe reveals nothing about the secret); compare
            // again in constant time so correctness never rests on the database's collation.
            Some(r) if token::ct_eq(get_str(&r, "token_hash")?.as_bytes(), hash.as_bytes()) => {
                Ok(Some(get_str(&r, "address")?))
            }
            _ => Ok(None),
        }
    }

    /// Stores an agent report for `address`, idempotently by `report_id`, and updates the
    /// agent-derived findings of the host.
    pub async fn add_agent_report(
        &self,
        address: &str,
        report_id: &str,
        report: &AgentReport,
        body: &str,
    ) -> Result<ReportOutcome> {
        let address = parse_address(address)?;
        let mut tx = self.begin_write().await?;
        let prior =
            sqlx::query("SELECT body FROM agent_reports WHERE address = $1 AND report_id = $2")
                .bind(address.clone())
                .bind(report_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(p) = prior {
            // Same id, same content: a retry. Same id, other content: a client bug worth a 409.
            let same = serde_json::from_str::<serde_json::Value>(&get_str(&p, "body")?).ok()
                == serde_json::from_str::<serde_json::Value>(body).ok();
            return if same {
                Ok(ReportOutcome::Duplicate)
            } else {
                Err(Error::Conflict(format!(
                    "report id {report_id} was already used for a different report"
                )))
            };
        }
        let (enabled, live) = report_flags(report);
        let now = now_unix();
        sqlx::query(
            "INSERT INTO agent_reports (address, report_id, received_at, generated_at, hostname, agent_version, \
             mta_enabled, mta_listening, actions, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(address.clone())
        .bind(report_id.to_string())
        .bind(now)
        .bind(i64::try_from(report.generated_at).unwrap_or(i64::MAX))
        .bind(report.host.hostname.clone())
        .bind(report.agent_version.clone())
        .bind(i64::from(enabled))
        .bind(i64::from(live))
        .bind(report.actions.len() as i64)
        .bind(body.to_string())
        .execute(&mut *tx)
        .await?;
        let snapshot = load_snapshot(&mut tx, self.rules.clone(), today(), None, None).await?;
        let thresholds = super::health::settings_in(&mut tx, &address)
            .await?
            .effective();
        apply_in(
            &mut tx,
            &agent_report_with(&snapshot, &address, report, thresholds),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ReportOutcome::Stored)
    }

    /// The latest reports of a host, newest first.
    pub async fn agent_reports(&self, address: &str, limit: i64) -> Result<Vec<AgentReportRow>> {
        let address = parse_address(address)?;
        let rows = sqlx::query(
            "SELECT address, report_id, received_at, generated_at, hostname, agent_version, mta_enabled, \
             mta_listening, actions, body FROM agent_reports WHERE address = $1 ORDER BY received_at DESC, report_id LIMIT $2",
        )
        .bind(address)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(report_from_row).collect()
    }
}

const REPORT_COLUMNS: &str = "address, report_id, received_at, generated_at, hostname, agent_version, \
    mta_enabled, mta_listening, actions, body";

fn report_from_row(r: &sqlx::any::AnyRow) -> Result<AgentReportRow> {
    Ok(AgentReportRow {
        report_id: get_str(r, "report_id")?,
        address: get_str(r, "address")?,
        received_at: get_i64(r, "received_at")?,
        generated_at: get_i64(r, "generated_at")?,
        hostname: get_str(r, "hostname")?,
        agent_version: get_str(r, "agent_version")?,
        mta_enabled: get_i64(r, "mta_enabled")? != 0,
        mta_listening: get_i64(r, "mta_listening")? != 0,
        actions: get_i64(r, "actions")?,
        report: serde_json::from_str(&get_str(r, "body")?).unwrap_or_default(),
    })
}

/// Which agent reports the reports list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFilter {
    /// Only reports about this host.
    pub address: Option<String>,
    /// Only reports that found an MTA listening (true) or none (false).
    pub listening: Option<bool>,
    /// Only reports received at or after this time (Unix seconds).
    pub since: Option<i64>,
}

impl Store {
    /// One page of agent reports matching `filter`, newest first (keyset on
    /// `(received_at, address, report_id)`).
    pub async fn reports_page(
        &self,
        filter: &ReportFilter,
        req: &PageRequest,
    ) -> Result<Page<AgentReportRow>> {
        let scope = format!(
            "reports {}",
            serde_json::to_string(filter).unwrap_or_default()
        );
        let mut w = Where::default();
        if let Some(a) = &filter.address {
            w.and("address = ?", [Arg::Text(parse_address(a)?)]);
        }
        if let Some(l) = filter.listening {
            w.and("mta_listening = ?", [Arg::Int(i64::from(l))]);
        }
        if let Some(t) = filter.since {
            w.and("received_at >= ?", [Arg::Int(t)]);
        }
        if let Some(c) = &req.after {
            let k = keyset::decode(&scope, c, 3)?;
            w.and(
                "(received_at, address, report_id) < (?, ?, ?)",
                [
                    Arg::Int(keyset::int(&k[0])?),
                    Arg::Text(keyset::text(&k[1])?),
                    Arg::Text(keyset::text(&k[2])?),
                ],
            );
        }
        let sql = format!("SELECT {REPORT_COLUMNS} FROM agent_reports");
        let rows = w
            .query(
                &sql,
                "received_at DESC, address DESC, report_id DESC",
                req.limit + 1,
            )
            .fetch_all(&self.pool)
            .await?;
        let mut rows: Vec<AgentReportRow> =
            rows.iter().map(report_from_row).collect::<Result<_>>()?;
        let next = if rows.len() as i64 > req.limit {
            rows.truncate(req.limit as usize);
            rows.last().map(|r| {
                keyset::encode(
                    &scope,
                    &[
                        r.received_at.into(),
                        r.address.clone().into(),
                        r.report_id.clone().into(),
                    ],
                )
            })
        } else {
            None
        };
        Ok(Page { rows, next })
    }
}
