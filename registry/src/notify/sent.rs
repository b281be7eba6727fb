//! What was sent: the `notices` and `notice_findings` tables (migration 0002).

use std::collections::HashMap;

use relayguard_core::Severity;
use sqlx::Row;

use crate::error::Result;
use crate::store::{FindingStatus, Store};

/// The last notice that told an admin about a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastNotice {
    /// The finding's status as reported.
    pub status: FindingStatus,
    /// The finding's severity as reported (lower-case name).
    pub severity: String,
    /// When the notice was sent (Unix seconds).
    pub sent_at: i64,
}

/// The latest notice per (admin e-mail in lower case, finding id).
pub async fn last_notices(store: &Store) -> Result<HashMap<(String, i64), LastNotice>> {
    let rows = sqlx::query(
        "SELECT n.admin_email, n.sent_at, nf.finding_id, nf.status_at_notice, nf.severity_at_notice \
         FROM notice_findings nf JOIN notices n ON n.id = nf.notice_id ORDER BY n.sent_at, n.id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = HashMap::new();
    for r in &rows {
        let admin: String = r.try_get("admin_email")?;
        let finding: i64 = r.try_get("finding_id")?;
        let status: String = r.try_get("status_at_notice")?;
        out.insert(
            (admin.to_ascii_lowercase(), finding),
            LastNotice {
                status: status.parse()?,
                severity: r.try_get("severity_at_notice")?,
                sent_at: r.try_get("sent_at")?,
            },
        );
    }
    Ok(out)
}

/// Records one sent notice and the findings it reported, atomically. Returns the notice id.
pub async fn record(
    store: &Store,
    admin_email: &str,
    message_id: &str,
    sent_at: i64,
    findings: &[(i64, FindingStatus, Severity)],
) -> Result<i64> {
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(
        "INSERT INTO notices (admin_email, message_id, sent_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(admin_email.to_ascii_lowercase())
    .bind(message_id.to_string())
    .bind(sent_at)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = row.try_get(0)?;
    for (finding, status, severity) in findings {
        sqlx::query(
            "INSERT INTO notice_findings (notice_id, finding_id, status_at_notice, severity_at_notice) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (notice_id, finding_id) DO NOTHING",
        )
        .bind(id)
        .bind(*finding)
        .bind(status.as_str())
        .bind(severity.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Records a failed delivery (counted by `/metrics`); nothing else changes, so the next run
/// tries the same news again.
pub async fn record_failure(
    store: &Store,
    admin_email: &str,
    failed_at: i64,
    error: &str,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("INSERT INTO notify_failures (admin_email, failed_at, error) VALUES ($1, $2, $3)")
        .bind(admin_email.to_ascii_lowercase())
        .bind(failed_at)
        .bind(error.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// One finding as a notice reported it, for a host's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeAbout {
    /// When the notice was sent (Unix seconds).
    pub sent_at: i64,
    /// To whom.
    pub admin_email: String,
    /// Its Message-ID.
    pub message_id: String,
    /// The finding's kind.
    pub kind: String,
    /// The finding's port.
    pub port: i64,
    /// The finding's status as reported.
    pub status: String,
    /// The finding's severity as reported.
    pub severity: String,
}

/// The notices that reported findings of `address`, newest first (at most `limit` lines).
pub async fn notices_about(store: &Store, address: &str, limit: i64) -> Result<Vec<NoticeAbout>> {
    let rows = sqlx::query(
        "SELECT n.sent_at, n.admin_email, n.message_id, f.kind, f.port, nf.status_at_notice, \
         nf.severity_at_notice FROM notice_findings nf JOIN notices n ON n.id = nf.notice_id \
         JOIN findings f ON f.id = nf.finding_id WHERE f.address = $1 \
         ORDER BY n.sent_at DESC, n.id DESC, f.kind LIMIT $2",
    )
    .bind(address.to_string())
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(NoticeAbout {
                sent_at: r.try_get("sent_at")?,
                admin_email: r.try_get("admin_email")?,
                message_id: r.try_get("message_id")?,
                kind: r.try_get("kind")?,
                port: r.try_get("port")?,
                status: r.try_get("status_at_notice")?,
                severity: r.try_get("severity_at_notice")?,
            })
        })
        .collect()
}

/// Every recorded notice as (admin e-mail, message id, sent at), oldest first.
pub async fn list_notices(store: &Store) -> Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query("SELECT admin_email, message_id, sent_at FROM notices ORDER BY id")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("admin_email")?,
                r.try_get("message_id")?,
                r.try_get("sent_at")?,
            ))
        })
        .collect()
}
