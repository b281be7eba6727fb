//! The registry's database: one [`Store`] over SQLite (embedded default) or PostgreSQL.
//!
//! Queries are built at run time on sqlx's `Any` driver so one code path serves both backends
//! (compile-time macros would tie us to one). The SQL is kept portable: `$N` placeholders (SQLite
//! accepts them too), `ON CONFLICT`, `RETURNING`, and only 64-bit integers and text columns.

mod agents;
mod applications;
mod apply;
pub mod dashboard;
pub(crate) mod findings;
pub(crate) mod health;
mod hosts;
pub mod keyset;
mod metrics;
mod migrate;
pub(crate) mod networks;
pub(crate) mod overrides;
mod queue;
mod sessions;
pub(crate) mod sweeps;
pub(crate) mod vantages;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use relayguard_core::rules::RuleSet;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use crate::reconcile::{Coverage, report_flags};
pub use agents::ReportFilter;
pub use agents::{AgentReportRow, ReportOutcome};
pub use applications::Application;
pub use apply::Applied;
pub use dashboard::Dashboard;
pub use findings::FindingListFilter;
pub use findings::parse_severity;
pub use findings::{FindingFilter, FindingRow, FindingSource, FindingStatus};
pub use health::ThresholdSettings;
pub use hosts::HostFilter;
pub use keyset::{Page, PageRequest};
pub use metrics::{MetricsSnapshot, VantageSweep};
pub use networks::most_specific;
pub use overrides::{
    AuditEntry, Override, OverrideInput, OverrideKind, OverrideState, evidence_key,
};
pub use queue::{QuarantinedShard, QueuedSweep, VantageProgress};
pub use relayguard_core::SweepMeta;
pub use sessions::{DeskAdmin, KnownAdmin, LinkState, RequestCounts, normalize_email};
pub use sweeps::SweepFilter;
pub use sweeps::{Observation, SweepRow};
pub use vantages::VantageRow;

/// A write transaction (see [`Store::begin_write`]).
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

use crate::error::{Error, Result};

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A handle on the registry database; cheap to clone (it wraps a connection pool).
///
/// It carries the rules whose severities the registry's own findings take: the built-in ones
/// unless [`Store::with_rules`] gave others (the CLI passes those loaded from `--rules DIR`).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    rules: Arc<RuleSet>,
    /// When pages last refreshed the registry-derived findings (Unix seconds; see
    /// [`Store::refresh_registrations_for_reading`]).
    read_refresh: Arc<std::sync::atomic::AtomicI64>,
}

impl Store {
    /// Opens (creating and migrating on first use) the database at `url`:
    /// `sqlite://PATH` (or `sqlite:PATH`) or `postgres://…` / `postgresql://…`.
    pub async fn open(url: &str) -> Result<Store> {
        // Idempotent: guarded by a `Once` inside sqlx.
        sqlx::any::install_default_drivers();

        let (backend, connect_url) = if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() || path == ":memory:" {
                return Err(Error::Invalid(
                    "an SQLite registry needs a file path (sqlite://PATH); in-memory databases are not shared between connections".into(),
                ));
            }
            if let Some(parent) = Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::Invalid(format!("cannot create directory {}: {e}", parent.display()))
                })?;
            }
            // mode=rwc creates the file on first use.
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(Error::Invalid(format!(
                "unsupported database URL {:?} (expected sqlite://PATH or postgres://…)",
                redact(url)
            )));
        };

        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            // SQLite allows one writer; a small pool avoids lock convoys. The pragmas are
            // per-connection: foreign keys enforce cascades, FULL sync makes an acknowledged
            // write durable even across power loss (kill -9 alone would only need NORMAL).
            options = options.max_connections(4).after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::raw_sql(
                        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL;",
                    )
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            });
        } else {
            options = options.max_connections(8);
        }
        let pool = options.connect(&connect_url).await.map_err(|e| match e {
            sqlx::Error::Database(_) => Error::from(e),
            other => Error::Invalid(format!("cannot open database {}: {other}", redact(url))),
        })?;
        if backend == Backend::Sqlite {
            // WAL is a property of the file, set once: readers never block the writer.
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let rules =
            RuleSet::builtin().map_err(|e| Error::Invalid(format!("the built-in rules: {e}")))?;
        let store = Store {
            pool,
            backend,
            rules: Arc::new(rules),
            read_refresh: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Starts a write transaction; write transactions run one at a time on both backends.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: a deferred transaction that reads first and writes
    /// later cannot wait for the write lock (SQLITE_BUSY at once, whatever the busy timeout),
    /// which concurrent API writers hit immediately. On PostgreSQL a transaction-scoped advisory
    /// lock gives the same single-writer behaviour, so reconciliation's read-then-upsert steps
    /// (and the missed-sweep counters) never interleave between two sweeps or reports.
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(7370502)")
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        })
    }

    /// Which engine this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool (for tests and maintenance).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The same store, deriving its findings' severities from `rules` (e.g. loaded from
    /// `--rules DIR`, so `severities.yaml` overrides apply in the registry too).
    pub fn with_rules(mut self, rules: Arc<RuleSet>) -> Store {
        self.rules = rules;
        self
    }

    /// The rules the registry's own findings take their severities from.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Closes every connection (flushes nothing: every write is committed when it returns).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Hides the password of a database URL before it goes into a message.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn get_str(row: &AnyRow, col: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(col)?)
}

fn get_i64(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

fn get_opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

fn get_opt_str(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}
