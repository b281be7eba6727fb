//! Registrations (hosts) in the store.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::applications::registration_changed;
use super::keyset::{self, Arg, Page, PageRequest, Where};
use super::{Store, Tx, get_i64, get_str};
use crate::error::{Error, Result};
use crate::model::{Host, HostUpdate, Lang, now_unix, parse_address, today};

/// Who the audit log names for changes made through the team's API and command line.
const TEAM: &str = "security-team";

const COLUMNS: &str = "address, hostname, role, admin_name, admin_email, note, registered_on, reviewed_on, review_months, status, admin_lang";

fn host_from_row(row: &AnyRow) -> Result<Host> {
    Ok(Host {
        address: get_str(row, "address")?,
        hostname: get_str(row, "hostname")?,
        role: get_str(row, "role")?.parse()?,
        admin_name: get_str(row, "admin_name")?,
        admin_email: get_str(row, "admin_email")?,
        note: get_str(row, "note")?,
        registered_on: get_str(row, "registered_on")?,
        reviewed_on: get_str(row, "reviewed_on")?,
        review_months: get_i64(row, "review_months")?,
        status: get_str(row, "status")?.parse()?,
        admin_lang: row
            .try_get::<Option<String>, _>("admin_lang")?
            .map(|l| l.parse())
            .transpose()?,
    })
}

impl Store {
    /// Adds a validated registration; a second registration of the same address is a conflict.
    pub async fn add_host(&self, host: &Host) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_host(&mut tx, host).await?;
        registration_changed(&mut tx, TEAM, "added", None, Some(host)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds many registrations atomically: either all go in or none (used by CSV import).
    pub async fn add_hosts(&self, hosts: &[Host]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for h in hosts {
            insert_host(&mut tx, h).await?;
            registration_changed(&mut tx, TEAM, "imported", None, Some(h)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// All registrations, ordered by address text.
    pub async fn list_hosts(&self) -> Result<Vec<Host>> {
        let sql = format!("SELECT {COLUMNS} FROM hosts ORDER BY address");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(host_from_row).collect()
    }

    /// The registration of `address`, if any (the address is validated first).
    pub async fn get_host(&self, address: &str) -> Result<Option<Host>> {
        let address = parse_address(address)?;
        let sql = format!("SELECT {COLUMNS} FROM hosts WHERE address = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(address)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host_from_row).transpose()
    }

    /// Applies a partial update and returns the new registration.
    pub async fn update_host(&self, address: &str, update: &HostUpdate) -> Result<Host> {
        let old = self
            .get_host(address)
            .await?
            .ok_or_else(|| Error::NotFound(format!("host {}", address.trim())))?;
        let new = update.apply(old.clone(), today())?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE hosts SET hostname = $1, role = $2, admin_name = $3, admin_email = $4, note = $5, \
             reviewed_on = $6, review_months = $7, status = $8, admin_lang = $9 WHERE address = $10",
        )
        .bind(new.hostname.clone())
        .bind(new.role.as_str())
        .bind(new.admin_name.clone())
        .bind(new.admin_email.clone())
        .bind(new.note.clone())
        .bind(new.reviewed_on.clone())
        .bind(new.review_months)
        .bind(new.status.as_str())
        .bind(new.admin_lang.map(Lang::as_str))
        .bind(new.address.clone())
        .execute(&mut *tx)
        .await?;
        if new != old {
            registration_changed(&mut tx, TEAM, "updated", Some(&old), Some(&new)).await?;
        }
        // A review or a role change may settle registry-derived findings at once, rather than
        // waiting for the next sweep.
        self.refresh_registrations_in(&mut tx).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Removes a registration (its agent token and reports go with it). Returns whether it existed.
    pub async fn remove_host(&self, address: &str) -> Result<bool> {
        let address = parse_address(address)?;
        let mut tx = self.begin_write().await?;
        let before = get_host_rows(&mut tx)
            .await?
            .into_iter()
            .find(|h| h.address == address);
        let done = sqlx::query("DELETE FROM hosts WHERE address = $1")
            .bind(address.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        // Findings about the registration itself make no sense once it is gone.
        sqlx::query(
            "UPDATE findings SET status = 'resolved', resolved_at = $1 \
             WHERE address = $2 AND source = 'registry' AND status = 'open'",
        )
        .bind(now_unix())
        .bind(address)
        .execute(&mut *tx)
        .await?;
        if let Some(before) = &before {
            registration_changed(&mut tx, TEAM, "removed", Some(before), None).await?;
        }
        tx.commit().await?;
        Ok(done)
    }
}

async fn insert_host(tx: &mut Tx, host: &Host) -> Result<()> {
    let exists = sqlx::query("SELECT 1 FROM hosts WHERE address = $1")
        .bind(host.address.clone())
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_some() {
        return Err(Error::Conflict(format!(
            "host {} is already registered",
            host.address
        )));
    }
    let sql = format!(
        "INSERT INTO hosts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(host.address.clone())
        .bind(host.hostname.clone())
        .bind(host.role.as_str())
        .bind(host.admin_name.clone())
        .bind(host.admin_email.clone())
        .bind(host.note.clone())
        .bind(host.registered_on.clone())
        .bind(host.reviewed_on.clone())
        .bind(host.review_months)
        .bind(host.status.as_str())
        .bind(host.admin_lang.map(Lang::as_str))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every registration, read inside a transaction (reconciliation needs a consistent view).
pub(crate) async fn get_host_rows(tx: &mut Tx) -> Result<Vec<Host>> {
    let sql = format!("SELECT {COLUMNS} FROM hosts ORDER BY address");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(host_from_row).collect()
}

/// Which registrations the hosts list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostFilter {
    /// Only this role.
    pub role: Option<crate::model::Role>,
    /// Only this status.
    pub status: Option<crate::model::HostStatus>,
    /// Only hosts whose administrator has this e-mail address (case-insensitive).
    pub admin: Option<String>,
}

impl Store {
    /// One page of registrations matching `filter`, by address text (keyset on the address).
    pub async fn hosts_page(&self, filter: &HostFilter, req: &PageRequest) -> Result<Page<Host>> {
        let scope = format!(
            "hosts {}",
            serde_json::to_string(filter).unwrap_or_default()
        );
        let mut w = Where::default();
        if let Some(r) = filter.role {
            w.and("role = ?", [Arg::Text(r.as_str().into())]);
        }
        if let Some(s) = filter.status {
            w.and("status = ?", [Arg::Text(s.as_str().into())]);
        }
        if let Some(a) = &filter.admin {
            w.and(
                "LOWER(admin_email) = ?",
                [Arg::Text(a.trim().to_lowercase())],
            );
        }
        if let Some(c) = &req.after {
            let k = keyset::decode(&scope, c, 1)?;
            w.and("address > ?", [Arg::Text(keyset::text(&k[0])?)]);
        }
        let sql = format!("SELECT {COLUMNS} FROM hosts");
        let rows = w
            .query(&sql, "address", req.limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut rows: Vec<Host> = rows.iter().map(host_from_row).collect::<Result<_>>()?;
        let next = if rows.len() as i64 > req.limit {
            rows.truncate(req.limit as usize);
            rows.last()
                .map(|h| keyset::encode(&scope, &[h.address.clone().into()]))
        } else {
            None
        };
        Ok(Page { rows, next })
    }
}
