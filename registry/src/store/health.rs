//! Per-host thresholds of the queue health findings (`mail-queue-backlog`, `bounce-burst`).
//! A host without a row, or with a NULL column, is judged by the registry's default
//! ([`HealthThresholds::default`]). Every change is recorded in the audit log.

use serde::{Deserialize, Serialize};

use super::overrides::audit;
use super::{Store, Tx, get_opt_i64};
use crate::error::{Error, Result};
use crate::model::{HealthThresholds, now_unix, parse_address, parse_text};

/// What is set for one host: `None` means the registry's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdSettings {
    /// Queued messages from which `mail-queue-backlog` opens (default 500).
    #[serde(default)]
    pub queue_backlog_threshold: Option<u64>,
    /// Bounces from which `bounce-burst` opens (default 100).
    #[serde(default)]
    pub bounce_burst_threshold: Option<u64>,
}

impl ThresholdSettings {
    /// The thresholds in effect: what is set, else the defaults.
    pub fn effective(&self) -> HealthThresholds {
        let d = HealthThresholds::default();
        HealthThresholds {
            queue_backlog_threshold: self
                .queue_backlog_threshold
                .unwrap_or(d.queue_backlog_threshold),
            bounce_burst_threshold: self
                .bounce_burst_threshold
                .unwrap_or(d.bounce_burst_threshold),
        }
    }

    /// Rejects 0 (it would open the finding on an empty queue) and values the databases'
    /// 64-bit signed columns cannot hold.
    fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("queue_backlog_threshold", self.queue_backlog_threshold),
            ("bounce_burst_threshold", self.bounce_burst_threshold),
        ] {
            if let Some(v) = v
                && (v == 0 || i64::try_from(v).is_err())
            {
                return Err(Error::Invalid(format!(
                    "{name} must be between 1 and {}, not {v}",
                    i64::MAX
                )));
            }
        }
        Ok(())
    }
}

/// The settings of `address` inside a transaction (all `None` without a row).
pub(crate) async fn settings_in(tx: &mut Tx, address: &str) -> Result<ThresholdSettings> {
    let row = sqlx::query(
        "SELECT queue_backlog_threshold, bounce_burst_threshold FROM host_health_thresholds \
         WHERE address = $1",
    )
    .bind(address.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else {
        return Ok(ThresholdSettings::default());
    };
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(ThresholdSettings {
        queue_backlog_threshold: positive(get_opt_i64(&r, "queue_backlog_threshold")?),
        bounce_burst_threshold: positive(get_opt_i64(&r, "bounce_burst_threshold")?),
    })
}

impl Store {
    /// The thresholds set for a registered host (`NotFound` for an unregistered one).
    pub async fn health_thresholds(&self, address: &str) -> Result<ThresholdSettings> {
        let address = parse_address(address)?;
        let mut tx = self.begin_write().await?;
        ensure_host(&mut tx, &address).await?;
        let s = settings_in(&mut tx, &address).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Sets a host's thresholds (`None`: back to the default; both `None` removes the row),
    /// recorded in the audit log as `by`. They apply from the host's next agent report.
    pub async fn set_health_thresholds(
        &self,
        address: &str,
        settings: &ThresholdSettings,
        by: &str,
    ) -> Result<ThresholdSettings> {
        let address = parse_address(address)?;
        let by = parse_text("by", by, true)?;
        settings.validate()?;
        let mut tx = self.begin_write().await?;
        ensure_host(&mut tx, &address).await?;
        let before = settings_in(&mut tx, &address).await?;
        sqlx::query("DELETE FROM host_health_thresholds WHERE address = $1")
            .bind(address.clone())
            .execute(&mut *tx)
            .await?;
        if *settings != ThresholdSettings::default() {
            let db = |v: Option<u64>| v.map(|v| v as i64);
            sqlx::query(
                "INSERT INTO host_health_thresholds (address, queue_backlog_threshold, \
                 bounce_burst_threshold, set_by, set_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(address.clone())
            .bind(db(settings.queue_backlog_threshold))
            .bind(db(settings.bounce_burst_threshold))
            .bind(by.clone())
            .bind(now_unix())
            .execute(&mut *tx)
            .await?;
        }
        audit(
            &mut tx,
            &by,
            "health-thresholds-set",
            &format!("host {address}"),
            &serde_json::json!({ "before": before, "after": settings }),
        )
        .await?;
        tx.commit().await?;
        Ok(*settings)
    }
}

async fn ensure_host(tx: &mut Tx, address: &str) -> Result<()> {
    let found = sqlx::query("SELECT address FROM hosts WHERE address = $1")
        .bind(address.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::NotFound(format!("host {address}")))
}
