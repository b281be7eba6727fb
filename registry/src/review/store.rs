//! The review's tables: reminders sent per due date, and renewal links (kept as SHA-256).

use sqlx::Row;
use time::Date;

use crate::Store;
use crate::error::Result;
use crate::model::{Host, format_date, now_unix, today};
use crate::token::hash_hex;

/// Midnight UTC at the start of `day`, in Unix seconds.
pub fn day_start(day: Date) -> i64 {
    day.midnight().assume_utc().unix_timestamp()
}

/// What a renewal link is worth right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Valid: the registration it renews and the due date it was sent for.
    Valid(Box<Host>, String),
    /// Already used (at this Unix time).
    Used(i64),
    /// Past its expiry.
    Expired,
    /// Not a link the registry made (or its registration is gone).
    Unknown,
}

impl Store {
    /// Whether the reminder for this registration and due date has been sent.
    pub async fn reminder_sent(&self, address: &str, due_on: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM review_reminders WHERE address = $1 AND due_on = $2")
                .bind(address.to_string())
                .bind(due_on.to_string())
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// Records that the reminder for this due date went out.
    pub async fn record_reminder(&self, address: &str, due_on: &str, at: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO review_reminders (address, due_on, sent_at) VALUES ($1, $2, $3) \
             ON CONFLICT (address, due_on) DO NOTHING",
        )
        .bind(address.to_string())
        .bind(due_on.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a renewal link (its hash only).
    pub async fn add_review_token(
        &self,
        token: &str,
        address: &str,
        due_on: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO review_tokens (token_hash, address, due_on, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_hex(token))
        .bind(address.to_string())
        .bind(due_on.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a renewal link (one whose mail could not be delivered).
    pub async fn remove_review_token(&self, token: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM review_tokens WHERE token_hash = $1")
            .bind(hash_hex(token))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// What the link `token` is worth at `now`.
    pub async fn review_link(&self, token: &str, now: i64) -> Result<LinkState> {
        let row = sqlx::query(
            "SELECT address, due_on, expires_at, used_at FROM review_tokens WHERE token_hash = $1",
        )
        .bind(hash_hex(token))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(LinkState::Unknown);
        };
        if let Some(used) = row.try_get::<Option<i64>, _>("used_at")? {
            return Ok(LinkState::Used(used));
        }
        if row.try_get::<i64, _>("expires_at")? <= now {
            return Ok(LinkState::Expired);
        }
        let address: String = row.try_get("address")?;
        match self.get_host(&address).await? {
            Some(h) => Ok(LinkState::Valid(Box::new(h), row.try_get("due_on")?)),
            None => Ok(LinkState::Unknown),
        }
    }

    /// Renews the registration of a valid link: in one transaction the link is used up (so a
    /// second click, even a concurrent one, finds it used), the registration is marked reviewed
    /// today, its other links are dropped and the registry's findings are brought in line
    /// (`registration-expired` resolves). Returns the state the link was in; the renewed
    /// registration when it was valid.
    pub async fn renew_by_link(&self, token: &str) -> Result<LinkState> {
        let now = now_unix();
        let state = self.review_link(token, now).await?;
        let LinkState::Valid(host, due_on) = state else {
            return Ok(state);
        };
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE review_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(hash_hex(token))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            drop(tx);
            return self.review_link(token, now).await;
        }
        sqlx::query("UPDATE hosts SET reviewed_on = $1 WHERE address = $2")
            .bind(format_date(today()))
            .bind(host.address.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM review_tokens WHERE address = $1 AND used_at IS NULL")
            .bind(host.address.clone())
            .execute(&mut *tx)
            .await?;
        self.refresh_registrations_in(&mut tx).await?;
        tx.commit().await?;
        let renewed = self.get_host(&host.address).await?.map_or(host, Box::new);
        Ok(LinkState::Valid(renewed, due_on))
    }
}
