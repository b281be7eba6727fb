//! relayguard-registry: the central registry of who may run a mail server on campus.
//!
//! It rebuilds a university's mail-server registration desk: registrations keyed by address with
//! a role and an administrator, network blocks with owners, sweeps of the scanner reconciled into
//! findings with a lifecycle, host-agent reports, exports for the firewall, an HTTP API and
//! server-rendered pages. The store is SQLite by default and PostgreSQL at scale, same behaviour.
//!
//! Its command line lives in the `relayguard` package (`src/registry_cmd/`), which hands it
//! typed options; the scanner's results come in through [`record_sweep`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod charts;
pub mod csv_io;
pub mod desk;
pub mod error;
pub mod export;
pub mod health_chart;
pub mod lists;
pub mod model;
pub mod notify;
pub mod pages;
pub mod reconcile;
pub mod review;
pub mod server;
pub mod store;
pub mod sweep_page;
pub mod tls;
pub mod token;

pub use error::{Error, Result};
pub use relayguard_core::SweepMeta;
pub use store::Store;

/// Records a sweep in `store` and reconciles it into findings ([`Store::record_sweep`]).
pub async fn record_sweep(
    store: &Store,
    meta: &SweepMeta,
    results: &[relayguard_core::scan::HostResult],
) -> Result<store::SweepRow> {
    store.record_sweep(meta, results).await
}

/// The default database URL: `sqlite://` + a file in the user's data directory
/// (`$XDG_DATA_HOME/relayguard/registry.db`, else `~/.local/share/relayguard/registry.db`).
pub fn default_database_url() -> String {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    format!(
        "sqlite://{}",
        base.join("relayguard").join("registry.db").display()
    )
}
