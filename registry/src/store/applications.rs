//! Applications at the desk in the store. Recording an application and making or changing the
//! registration it approves happen in one write, with the change in the audit log (before and
//! after): nothing is half-written on any error.

use serde::{Deserialize, Serialize};

use super::overrides::audit;
use super::{Store, Tx, get_i64, get_opt_str, get_str};
use crate::desk::applications::{
    ApplicationStatus, AuditFinding, CheckResult, NewApplication, Outcome,
};
use crate::error::{Error, Result};
use crate::model::{DEFAULT_REVIEW_MONTHS, Host, HostStatus, Lang, format_date, now_unix, today};

/// An application as stored, with its checks' results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Its number.
    pub id: i64,
    /// What was applied for.
    #[serde(flatten)]
    pub input: NewApplication,
    /// Who applied (an administrator's address or `security-team`).
    pub applicant: String,
    /// Where it stands.
    pub status: ApplicationStatus,
    /// Each check's result at submission.
    pub checks: Vec<CheckResult>,
    /// The relay audit's findings (mail-direct only).
    pub findings: Vec<AuditFinding>,
    /// Submitted (Unix seconds).
    pub created_at: i64,
    /// Last changed (Unix seconds).
    pub updated_at: i64,
}

const COLUMNS: &str = "id, address, hostname, role, contact_name, contact_email, lang, mail_domain, \
    note, applicant, status, checks, findings, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Application> {
    let json = |col: &str| -> Result<String> { get_str(r, col) };
    Ok(Application {
        id: get_i64(r, "id")?,
        input: NewApplication {
            address: get_str(r, "address")?,
            hostname: get_str(r, "hostname")?,
            role: get_str(r, "role")?.parse()?,
            contact_name: get_str(r, "contact_name")?,
            contact_email: get_str(r, "contact_email")?,
            lang: get_str(r, "lang")?.parse()?,
            mail_domain: get_opt_str(r, "mail_domain")?,
            note: get_str(r, "note")?,
        },
        applicant: get_str(r, "applicant")?,
        status: get_str(r, "status")?.parse()?,
        checks: serde_json::from_str(&json("checks")?)
            .map_err(|e| Error::Invalid(format!("stored checks: {e}")))?,
        findings: serde_json::from_str(&json("findings")?)
            .map_err(|e| Error::Invalid(format!("stored findings: {e}")))?,
        created_at: get_i64(r, "created_at")?,
        updated_at: get_i64(r, "updated_at")?,
    })
}

impl Store {
    /// Records an application with its outcome; when approved, makes or updates the
    /// registration in the same write (audit-logged with before and after).
    pub async fn submit_application(
        &self,
        app: &NewApplication,
        applicant: &str,
        outcome: &Outcome,
    ) -> Result<Application> {
        let now = now_unix();
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO desk_applications ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
            &COLUMNS["id, ".len()..]
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app.address.clone())
            .bind(app.hostname.clone())
            .bind(app.role.as_str())
            .bind(app.contact_name.clone())
            .bind(app.contact_email.clone())
            .bind(app.lang.as_str())
            .bind(app.mail_domain.clone())
            .bind(app.note.clone())
            .bind(applicant.to_string())
            .bind(outcome.status.as_str())
            .bind(serde_json::to_string(&outcome.checks).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&outcome.findings).unwrap_or_else(|_| "[]".into()))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let id = get_i64(&row, "id")?;
        if outcome.status == ApplicationStatus::Approved {
            self.register(&mut tx, app, applicant, id).await?;
        }
        tx.commit().await?;
        self.get_application(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("application {id}")))
    }

    /// Makes or updates the registration an approved application asks for.
    async fn register(
        &self,
        tx: &mut Tx,
        app: &NewApplication,
        actor: &str,
        id: i64,
    ) -> Result<()> {
        let before = super::hosts::get_host_rows(tx)
            .await?
            .into_iter()
            .find(|h| h.address == app.address);
        let day = format_date(today());
        let after = Host {
            address: app.address.clone(),
            hostname: app.hostname.clone(),
            role: app.role,
            admin_name: app.contact_name.clone(),
            admin_email: app.contact_email.clone(),
            note: app.note.clone(),
            registered_on: before
                .as_ref()
                .map_or(day.clone(), |b| b.registered_on.clone()),
            reviewed_on: day,
            review_months: before
                .as_ref()
                .map_or(DEFAULT_REVIEW_MONTHS, |b| b.review_months),
            status: HostStatus::Active,
            admin_lang: Some(app.lang),
        };
        if before.is_some() {
            sqlx::query(
                "UPDATE hosts SET hostname = $1, role = $2, admin_name = $3, admin_email = $4, note = $5, \
                 reviewed_on = $6, status = $7, admin_lang = $8 WHERE address = $9",
            )
            .bind(after.hostname.clone())
            .bind(after.role.as_str())
            .bind(after.admin_name.clone())
            .bind(after.admin_email.clone())
            .bind(after.note.clone())
            .bind(after.reviewed_on.clone())
            .bind(after.status.as_str())
            .bind(after.admin_lang.map(Lang::as_str))
            .bind(after.address.clone())
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO hosts (address, hostname, role, admin_name, admin_email, note, registered_on, \
                 reviewed_on, review_months, status, admin_lang) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(after.address.clone())
            .bind(after.hostname.clone())
            .bind(after.role.as_str())
            .bind(after.admin_name.clone())
            .bind(after.admin_email.clone())
            .bind(after.note.clone())
            .bind(after.registered_on.clone())
            .bind(after.reviewed_on.clone())
            .bind(after.review_months)
            .bind(after.status.as_str())
            .bind(after.admin_lang.map(Lang::as_str))
            .execute(&mut **tx)
            .await?;
        }
        registration_changed(
            tx,
            actor,
            &format!("application {id}"),
            before.as_ref(),
            Some(&after),
        )
        .await?;
        self.refresh_registrations_in(tx).await?;
        Ok(())
    }

    /// One application.
    pub async fn get_application(&self, id: i64) -> Result<Option<Application>> {
        let sql = format!("SELECT {COLUMNS} FROM desk_applications WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Applications, newest first: all of them, or those one applicant made or is the contact of.
    pub async fn list_applications(&self, of: Option<&str>) -> Result<Vec<Application>> {
        let rows = match of {
            None => {
                let sql = format!("SELECT {COLUMNS} FROM desk_applications ORDER BY id DESC");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(self.pool())
                    .await?
            }
            Some(email) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM desk_applications \
                     WHERE lower(applicant) = $1 OR lower(contact_email) = $1 ORDER BY id DESC"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(email.to_ascii_lowercase())
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Cancels an application. Cancelling an approved one retires the registration it made
    /// (audit-logged). A cancelled application cannot be cancelled again.
    pub async fn cancel_application(&self, id: i64, actor: &str) -> Result<Application> {
        self.move_application(id, actor, ApplicationStatus::Cancelled)
            .await
    }

    /// The security team approves a held application: the registration is made as on automatic
    /// approval.
    pub async fn approve_application(&self, id: i64, actor: &str) -> Result<Application> {
        self.move_application(id, actor, ApplicationStatus::Approved)
            .await
    }

    async fn move_application(
        &self,
        id: i64,
        actor: &str,
        to: ApplicationStatus,
    ) -> Result<Application> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {COLUMNS} FROM desk_applications WHERE id = $1");
        let app = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("application {id}")))?;
        match (app.status, to) {
            (ApplicationStatus::Cancelled, _) => {
                return Err(Error::Conflict(format!(
                    "application {id} is already cancelled"
                )));
            }
            (ApplicationStatus::Held, ApplicationStatus::Approved) => {
                self.register(&mut tx, &app.input, actor, id).await?;
            }
            (other, ApplicationStatus::Approved) => {
                return Err(Error::Conflict(format!(
                    "application {id} is {}; only held applications are approved by hand",
                    other.as_str()
                )));
            }
            (ApplicationStatus::Approved, ApplicationStatus::Cancelled) => {
                let before = super::hosts::get_host_rows(&mut tx)
                    .await?
                    .into_iter()
                    .find(|h| h.address == app.input.address);
                if let Some(before) = before {
                    let mut after = before.clone();
                    after.status = HostStatus::Retired;
                    sqlx::query("UPDATE hosts SET status = 'retired' WHERE address = $1")
                        .bind(before.address.clone())
                        .execute(&mut *tx)
                        .await?;
                    registration_changed(
                        &mut tx,
                        actor,
                        &format!("application {id} cancelled"),
                        Some(&before),
                        Some(&after),
                    )
                    .await?;
                    self.refresh_registrations_in(&mut tx).await?;
                }
            }
            _ => {}
        }
        sqlx::query("UPDATE desk_applications SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(now_unix())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            &format!("application-{}", to.as_str()),
            &format!("application {id}"),
            &serde_json::json!({ "address": app.input.address, "from": app.status.as_str() }),
        )
        .await?;
        tx.commit().await?;
        self.get_application(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("application {id}")))
    }

    /// The audit log entries about one registration (`host ADDRESS`), newest first.
    pub async fn registration_history(&self, address: &str) -> Result<Vec<super::AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, subject, detail FROM audit_log WHERE subject = $1 ORDER BY id DESC",
        )
        .bind(format!("host {address}"))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(super::AuditEntry {
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

/// Writes a registration change to the audit log: subject `host ADDRESS`, the registration
/// before and after (None: did not exist / removed), and why.
pub(crate) async fn registration_changed(
    tx: &mut Tx,
    actor: &str,
    why: &str,
    before: Option<&Host>,
    after: Option<&Host>,
) -> Result<()> {
    let address = after
        .or(before)
        .map(|h| h.address.clone())
        .unwrap_or_default();
    let action = match (before, after) {
        (None, Some(_)) => "registration-created",
        (Some(_), None) => "registration-removed",
        _ => "registration-changed",
    };
    audit(
        tx,
        actor,
        action,
        &format!("host {address}"),
        &serde_json::json!({ "why": why, "before": before, "after": after }),
    )
    .await
}
