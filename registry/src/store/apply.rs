//! Reading the [`Snapshot`] reconciliation needs and applying the [`Changes`] it returns.
//!
//! Both happen inside one write transaction (see [`Store::begin_write`]): no other writer can
//! slip between what reconciliation read and what it decided.

use std::collections::HashMap;
use std::sync::Arc;

use relayguard_core::FindingKind;
use relayguard_core::rules::RuleSet;
use time::Date;

use super::findings::{resolve_key, upsert_open};
use super::hosts::get_host_rows;
use super::{Store, Tx, get_i64, get_str};
use crate::error::Result;
use crate::reconcile::{Changes, Counter, FindingKey, OpenFinding, Snapshot};

/// What applying [`Changes`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Findings that were not open before: new, or reopened.
    pub opened: i64,
    /// Open findings that were resolved.
    pub resolved: i64,
}

/// Reads everything reconciliation looks at.
pub(crate) async fn load_snapshot(
    tx: &mut Tx,
    rules: Arc<RuleSet>,
    today: Date,
    sweep: Option<i64>,
    vantage: Option<&str>,
) -> Result<Snapshot> {
    let hosts = get_host_rows(tx).await?;
    let missed_sweeps = sqlx::query("SELECT address, missed_sweeps FROM hosts")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok((get_str(r, "address")?, get_i64(r, "missed_sweeps")?)))
        .collect::<Result<HashMap<_, _>>>()?;
    let mut open = Vec::new();
    for r in sqlx::query(
        "SELECT address, port, kind, source, vantages FROM findings WHERE status = 'open'",
    )
    .fetch_all(&mut **tx)
    .await?
    {
        // A kind this version does not know (written by a newer one) is left alone.
        let Ok(kind) = get_str(&r, "kind")?.parse::<FindingKind>() else {
            continue;
        };
        open.push(OpenFinding {
            key: FindingKey {
                address: get_str(&r, "address")?,
                port: get_i64(&r, "port")?,
                kind,
            },
            source: super::findings::source_from_str(&get_str(&r, "source")?),
            vantages: super::vantages::parse_list(&get_str(&r, "vantages")?),
        });
    }
    Ok(Snapshot {
        hosts,
        missed_sweeps,
        open,
        today,
        rules,
        sweep,
        vantage: vantage.map(str::to_string),
        vantages: super::vantages::load(tx).await?,
    })
}

/// Applies `changes` inside `tx` as of `now` (Unix seconds).
pub(crate) async fn apply_in(tx: &mut Tx, changes: &Changes, now: i64) -> Result<Applied> {
    if !changes.narrow.is_empty() {
        let marked = super::vantages::load(tx).await?;
        for n in &changes.narrow {
            super::vantages::narrow(tx, n, &marked).await?;
        }
    }
    let mut applied = Applied::default();
    for f in &changes.open {
        if upsert_open(tx, f, now).await? {
            applied.opened += 1;
        }
    }
    for key in &changes.resolve {
        if resolve_key(tx, key, now).await? {
            applied.resolved += 1;
        }
    }
    for c in &changes.counters {
        match c {
            Counter::Listening(address) => {
                sqlx::query(
                    "UPDATE hosts SET missed_sweeps = 0, last_listening_at = $1 WHERE address = $2",
                )
                .bind(now)
                .bind(address.clone())
                .execute(&mut **tx)
                .await?;
            }
            Counter::Missed { address, misses } => {
                sqlx::query("UPDATE hosts SET missed_sweeps = $1 WHERE address = $2")
                    .bind(*misses)
                    .bind(address.clone())
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(applied)
}

impl Store {
    /// Applies the result of a reconciliation in one transaction.
    pub async fn apply(&self, changes: &Changes) -> Result<Applied> {
        let mut tx = self.begin_write().await?;
        let applied = apply_in(&mut tx, changes, crate::model::now_unix()).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Re-evaluates registry-level findings (overdue reviews) as of today; cheap, and called
    /// before findings are listed so an expiry shows up without waiting for a sweep.
    pub async fn refresh_registrations(&self) -> Result<()> {
        let mut tx = self.begin_write().await?;
        self.refresh_registrations_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`Store::refresh_registrations`] inside a caller's transaction.
    pub(crate) async fn refresh_registrations_in(&self, tx: &mut Tx) -> Result<Applied> {
        let snapshot =
            load_snapshot(tx, self.rules.clone(), crate::model::today(), None, None).await?;
        apply_in(
            tx,
            &crate::reconcile::registrations(&snapshot),
            crate::model::now_unix(),
        )
        .await
    }
}
