//! Overrides of findings — an accepted risk or a false positive, with a reason, who and until
//! when — and the audit log that records every change to them.
//!
//! An override holds while its date has not passed and the finding's evidence is what it was
//! when the override was made ([`evidence_key`]: the severity and the accepted tests). When it
//! lapses, the finding is an ordinary open finding again, and notify mails it as reopened.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::Date;

use super::{Store, Tx, get_i64, get_str};
use crate::error::{Error, Result};
use crate::model::{format_date, now_unix, parse_date, parse_text, today};
use crate::store::FindingRow;

/// What an override says about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideKind {
    /// The finding is real and the risk is accepted until a date.
    AcceptedRisk,
    /// The finding is wrong for a reason relayguard cannot see.
    FalsePositive,
}

impl OverrideKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::AcceptedRisk => "accepted-risk",
            OverrideKind::FalsePositive => "false-positive",
        }
    }
}

impl FromStr for OverrideKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "accepted-risk" => Ok(OverrideKind::AcceptedRisk),
            "false-positive" => Ok(OverrideKind::FalsePositive),
            other => Err(Error::Invalid(format!(
                "invalid override {other:?} (expected accepted-risk or false-positive)"
            ))),
        }
    }
}

impl fmt::Display for OverrideKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An override as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// Accepted risk or false positive.
    pub kind: OverrideKind,
    /// Why.
    pub reason: String,
    /// Who made it.
    pub made_by: String,
    /// When (Unix seconds).
    pub made_at: i64,
    /// The last day it holds (YYYY-MM-DD); required for an accepted risk.
    pub until: Option<String>,
    /// The evidence it was made for (see [`evidence_key`]).
    pub evidence_key: String,
}

/// Whether an override still holds, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideState {
    /// It holds: the finding is not mailed and is counted apart.
    InForce,
    /// Its date has passed.
    Expired,
    /// The evidence changed since it was made (other accepted tests, another severity).
    EvidenceChanged,
}

impl Override {
    /// The state of this override of `finding` on `day`.
    pub fn state(&self, finding: &FindingRow, day: Date) -> OverrideState {
        let expired = self
            .until
            .as_deref()
            .and_then(|u| parse_date(u).ok())
            .is_some_and(|until| day > until);
        if expired {
            OverrideState::Expired
        } else if evidence_key(finding) != self.evidence_key {
            OverrideState::EvidenceChanged
        } else {
            OverrideState::InForce
        }
    }
}

/// What an override is made for: the finding's severity and the tests that showed it, so that
/// another set of accepted relay vectors or another severity lapses the override.
pub fn evidence_key(f: &FindingRow) -> String {
    let mut tests: Vec<&str> = f
        .evidence
        .get("tests")
        .and_then(|t| t.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    tests.sort_unstable();
    tests.dedup();
    format!("{}|{}", f.severity.as_str(), tests.join(","))
}

/// An override as asked for (CLI, API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideInput {
    /// `accepted-risk` or `false-positive`.
    pub kind: String,
    /// Why (required).
    pub reason: String,
    /// Who (required: a name or e-mail address).
    pub by: String,
    /// The last day it holds (YYYY-MM-DD): required for an accepted risk, optional otherwise.
    #[serde(default)]
    pub until: Option<String>,
}

impl OverrideInput {
    fn validate(&self, today: Date) -> Result<(OverrideKind, String, String, Option<String>)> {
        let kind: OverrideKind = self.kind.parse()?;
        let reason = parse_text("reason", &self.reason, true)?;
        let by = parse_text("by", &self.by, true)?;
        let until = match self.until.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d) => {
                let d = parse_date(d)?;
                if d < today {
                    return Err(Error::Invalid(format!(
                        "--until {} has already passed",
                        format_date(d)
                    )));
                }
                Some(format_date(d))
            }
        };
        if kind == OverrideKind::AcceptedRisk && until.is_none() {
            return Err(Error::Invalid(
                "an accepted risk needs an expiry date (--until YYYY-MM-DD)".into(),
            ));
        }
        Ok((kind, reason, by, until))
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (Unix seconds).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What (`override-set`, `override-cleared`).
    pub action: String,
    /// On what (`finding 12`).
    pub subject: String,
    /// The details, as JSON text.
    pub detail: String,
}

/// Appends to the audit log inside the write that it records.
pub(crate) async fn audit(
    tx: &mut Tx,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now_unix())
    .bind(actor.to_string())
    .bind(action.to_string())
    .bind(subject.to_string())
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const OVERRIDE_COLUMNS: &str =
    "finding_id, kind, reason, made_by, made_at, until_date, evidence_key";

fn override_from_row(r: &sqlx::any::AnyRow) -> Result<(i64, Override)> {
    Ok((
        get_i64(r, "finding_id")?,
        Override {
            kind: get_str(r, "kind")?.parse()?,
            reason: get_str(r, "reason")?,
            made_by: get_str(r, "made_by")?,
            made_at: get_i64(r, "made_at")?,
            until: r.try_get::<Option<String>, _>("until_date")?,
            evidence_key: get_str(r, "evidence_key")?,
        },
    ))
}

/// Every override, by finding id.
pub(crate) async fn all_overrides(store: &Store) -> Result<Vec<(i64, Override)>> {
    let sql = format!("SELECT {OVERRIDE_COLUMNS} FROM finding_overrides");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(override_from_row).collect()
}

/// The overrides of the findings `ids` (those that have one), by finding id.
pub(crate) async fn overrides_of(store: &Store, ids: &[i64]) -> Result<Vec<(i64, Override)>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let marks = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {OVERRIDE_COLUMNS} FROM finding_overrides WHERE finding_id IN ({marks})"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(store.pool()).await? {
            out.push(override_from_row(&r)?);
        }
    }
    Ok(out)
}

/// The override of finding `id`, if any.
pub(crate) async fn override_of(store: &Store, id: i64) -> Result<Option<Override>> {
    let sql = format!("SELECT {OVERRIDE_COLUMNS} FROM finding_overrides WHERE finding_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    Ok(row
        .as_ref()
        .map(override_from_row)
        .transpose()?
        .map(|(_, o)| o))
}

impl Store {
    /// Overrides finding `id` (replacing an earlier override), recorded in the audit log. Only
    /// an open finding can be overridden.
    pub async fn set_override(&self, id: i64, input: &OverrideInput) -> Result<Override> {
        let (kind, reason, by, until) = input.validate(today())?;
        let finding = self
            .finding(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("finding {id}")))?;
        if finding.status != super::FindingStatus::Open {
            return Err(Error::Invalid(format!(
                "finding {id} is resolved: only open findings are overridden"
            )));
        }
        let o = Override {
            kind,
            reason,
            made_by: by,
            made_at: now_unix(),
            until,
            evidence_key: evidence_key(&finding),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM finding_overrides WHERE finding_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO finding_overrides (finding_id, kind, reason, made_by, made_at, until_date, evidence_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(o.kind.as_str())
        .bind(o.reason.clone())
        .bind(o.made_by.clone())
        .bind(o.made_at)
        .bind(o.until.clone())
        .bind(o.evidence_key.clone())
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &o.made_by,
            "override-set",
            &format!("finding {id}"),
            &serde_json::json!({
                "kind": o.kind.as_str(), "reason": o.reason, "until": o.until,
                "address": finding.address, "port": finding.port, "finding": finding.kind,
                "evidence": o.evidence_key,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(o)
    }

    /// Removes the override of finding `id`; returns whether there was one. Recorded in the
    /// audit log.
    pub async fn clear_override(&self, id: i64, by: &str) -> Result<bool> {
        let by = parse_text("by", by, true)?;
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM finding_overrides WHERE finding_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            audit(
                &mut tx,
                &by,
                "override-cleared",
                &format!("finding {id}"),
                &serde_json::json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// The audit log, newest first (at most `limit` entries).
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: get_i64(r, "at")?,
                    actor: get_str(r, "actor")?,
                    action: get_str(r, "action")?,
                    subject: get_str(r, "subject")?,
                    detail: get_str(r, "detail")?,
                })
            })
            .collect()
    }
}
