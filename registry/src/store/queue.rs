//! Progress of sweeps planned on the job queue (`relayguard sweep --queue`), read from the
//! queue's tables (PostgreSQL only): what `relayguard sweeps show` prints and the sweep page
//! shows.

use super::{Backend, Store, get_i64, get_opt_i64, get_str};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// Progress of one vantage of a queued sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VantageProgress {
    /// The vantage name.
    pub vantage: String,
    /// `running`, `merging` or `merged`.
    pub state: String,
    /// Shards swept to the end.
    pub shards_done: i64,
    /// Shards being swept (a checkpoint written, not finished).
    pub shards_running: i64,
    /// Shards not started.
    pub shards_pending: i64,
    /// Shards given up on after too many attempts (left out of the coverage).
    pub shards_quarantined: i64,
    /// Addresses done (checkpointed).
    pub addresses_done: i64,
    /// Addresses planned.
    pub addresses: i64,
    /// Open ports found so far.
    pub open_ports: i64,
    /// Findings so far (before reconciliation).
    pub findings: i64,
    /// The registry sweep it was merged into.
    pub registry_sweep_id: Option<i64>,
}

/// A shard that was never swept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedShard {
    /// Its vantage.
    pub vantage: String,
    /// Its number within the vantage.
    pub shard: i64,
    /// Its first address.
    pub first: String,
    /// Its last address.
    pub last: String,
}

/// A queued sweep and the progress of each of its vantages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedSweep {
    /// Its number (the one `sweep --queue` printed).
    pub id: i64,
    /// When it was planned (Unix seconds).
    pub created_at: i64,
    /// The `sweep` command line it was planned from.
    pub sweep_args: Vec<String>,
    /// Addresses per vantage.
    pub addresses: i64,
    /// Per vantage, by name.
    pub vantages: Vec<VantageProgress>,
    /// The quarantined shards, by vantage and number.
    pub quarantined: Vec<QuarantinedShard>,
}

impl Store {
    /// A queued sweep with its progress; `None` when there is no such sweep, or the registry is
    /// on SQLite (which has no queue).
    pub async fn queued_sweep(&self, id: i64) -> Result<Option<QueuedSweep>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let Some(head) = sqlx::query(
            "SELECT id, created_at, sweep_args, addresses FROM queue_sweeps WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let vantages = sqlx::query(
            "SELECT v.vantage, v.state, v.registry_sweep_id, \
               count(s.shard) FILTER (WHERE s.state = 'done') AS done, \
               count(s.shard) FILTER (WHERE s.state = 'running') AS running, \
               count(s.shard) FILTER (WHERE s.state = 'pending') AS pending, \
               count(s.shard) FILTER (WHERE s.state = 'quarantined') AS quarantined, \
               COALESCE(sum(s.done), 0)::bigint AS addresses_done, \
               COALESCE(sum(s.addresses), 0)::bigint AS addresses, \
               COALESCE(sum(s.open_ports), 0)::bigint AS open_ports, \
               (SELECT COALESCE(sum(r.findings), 0)::bigint FROM queue_results r \
                 WHERE r.sweep_id = v.sweep_id AND r.vantage = v.vantage) AS findings \
             FROM queue_vantages v LEFT JOIN queue_shards s \
               ON s.sweep_id = v.sweep_id AND s.vantage = v.vantage \
             WHERE v.sweep_id = $1 GROUP BY v.sweep_id, v.vantage, v.state, v.registry_sweep_id \
             ORDER BY v.vantage",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(VantageProgress {
                vantage: get_str(r, "vantage")?,
                state: get_str(r, "state")?,
                registry_sweep_id: get_opt_i64(r, "registry_sweep_id")?,
                shards_done: get_i64(r, "done")?,
                shards_running: get_i64(r, "running")?,
                shards_pending: get_i64(r, "pending")?,
                shards_quarantined: get_i64(r, "quarantined")?,
                addresses_done: get_i64(r, "addresses_done")?,
                addresses: get_i64(r, "addresses")?,
                open_ports: get_i64(r, "open_ports")?,
                findings: get_i64(r, "findings")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let quarantined = sqlx::query(
            "SELECT vantage, shard, first_address, last_address FROM queue_shards \
             WHERE sweep_id = $1 AND state = 'quarantined' ORDER BY vantage, shard",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(QuarantinedShard {
                vantage: get_str(r, "vantage")?,
                shard: get_i64(r, "shard")?,
                first: get_str(r, "first_address")?,
                last: get_str(r, "last_address")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(QueuedSweep {
            id: get_i64(&head, "id")?,
            created_at: get_i64(&head, "created_at")?,
            sweep_args: serde_json::from_str(&get_str(&head, "sweep_args")?).unwrap_or_default(),
            addresses: get_i64(&head, "addresses")?,
            vantages,
            quarantined,
        }))
    }
}
