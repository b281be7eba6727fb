//! A minimal migration runner over embedded SQL files (one list per backend).
//!
//! sqlx's own `migrate!` needs the proc-macro crate, which would compile both drivers a second
//! time on our two-core CI; applying numbered files in order is all we need.

use sqlx::Row;

use super::{Backend, Store};
use crate::error::Result;

/// (version, SQL) for SQLite, in order.
const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_notices.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_sweep_notes.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_finding_tested_from.sql"),
    ),
    (
        30,
        include_str!("../../migrations/sqlite/0030_notify_failures.sql"),
    ),
    (
        31,
        include_str!("../../migrations/sqlite/0031_admin_lang.sql"),
    ),
    (
        32,
        include_str!("../../migrations/sqlite/0032_overrides.sql"),
    ),
    (
        40,
        include_str!("../../migrations/sqlite/0040_desk_sessions.sql"),
    ),
    (
        41,
        include_str!("../../migrations/sqlite/0041_applications.sql"),
    ),
    (45, include_str!("../../migrations/sqlite/0045_reviews.sql")),
    (
        46,
        include_str!("../../migrations/sqlite/0046_review_grace.sql"),
    ),
    (
        50,
        include_str!("../../migrations/sqlite/0050_health_thresholds.sql"),
    ),
    (
        55,
        include_str!("../../migrations/sqlite/0055_vantages.sql"),
    ),
    (
        60,
        include_str!("../../migrations/sqlite/0060_list_indexes.sql"),
    ),
    (
        61,
        include_str!("../../migrations/sqlite/0061_dashboard_indexes.sql"),
    ),
];
/// (version, SQL) for PostgreSQL, in order; same versions as [`SQLITE`], plus the queue's
/// (numbered from 10).
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_notices.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_sweep_notes.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_finding_tested_from.sql"),
    ),
    // PostgreSQL only: the sharded-sweep tables (the job queue needs PostgreSQL).
    (10, include_str!("../../migrations/postgres/0010_queue.sql")),
    (
        11,
        include_str!("../../migrations/postgres/0011_schedules.sql"),
    ),
    (
        30,
        include_str!("../../migrations/postgres/0030_notify_failures.sql"),
    ),
    (
        31,
        include_str!("../../migrations/postgres/0031_admin_lang.sql"),
    ),
    (
        32,
        include_str!("../../migrations/postgres/0032_overrides.sql"),
    ),
    (
        40,
        include_str!("../../migrations/postgres/0040_desk_sessions.sql"),
    ),
    (
        41,
        include_str!("../../migrations/postgres/0041_applications.sql"),
    ),
    (
        45,
        include_str!("../../migrations/postgres/0045_reviews.sql"),
    ),
    (
        46,
        include_str!("../../migrations/postgres/0046_review_grace.sql"),
    ),
    (
        50,
        include_str!("../../migrations/postgres/0050_health_thresholds.sql"),
    ),
    (
        55,
        include_str!("../../migrations/postgres/0055_vantages.sql"),
    ),
    (
        60,
        include_str!("../../migrations/postgres/0060_list_indexes.sql"),
    ),
    (
        61,
        include_str!("../../migrations/postgres/0061_dashboard_indexes.sql"),
    ),
];

/// Applies every migration not applied yet, each in its own transaction.
pub(super) async fn run(store: &Store) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    let list = match store.backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => {
            // Two registries starting against one server must not race on DDL.
            sqlx::query("SELECT pg_advisory_lock(7370501)")
                .execute(&mut *conn)
                .await?;
            POSTGRES
        }
    };
    let result = async {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS relayguard_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let rows = sqlx::query("SELECT version FROM relayguard_schema").fetch_all(&mut *conn).await?;
        let applied: Vec<i64> = rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<_, _>>()?;
        for (version, sql) in list {
            if applied.contains(version) {
                continue;
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO relayguard_schema (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(crate::model::now_unix())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "applied registry migration");
        }
        Ok::<(), crate::error::Error>(())
    }
    .await;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7370501)")
            .execute(&mut *conn)
            .await?;
    }
    result
}
