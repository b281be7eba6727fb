//! relayguard-scanner: the sweep engine.
//!
//! Targets ([`targets`]) become a lazy address stream; each address is probed for an open port
//! ([`discover`]) at a global pace ([`pacing`]); open ports are audited ([`audit`](mod@audit))
//! through the SMTP engine ([`smtp`]) by the probes listed in [`probes::PROBES`]; [`sweep`] runs
//! the whole pipeline. The scanner knows nothing of the registry: it takes rules and settings and
//! returns [`relayguard_core::scan::HostResult`]s.

pub mod audit;
pub mod confirm;
pub mod discover;
pub mod dns;
pub mod pacing;
pub mod probes;
pub mod smtp;
pub mod sweep;
pub mod targets;

pub use audit::{AuditConfig, audit};
pub use pacing::Pacer;
pub use sweep::{Progress, SweepConfig};
pub use targets::{Target, TargetSet, TargetSpec};

/// Raises the soft limit on open files to the hard limit and returns the new soft limit.
///
/// A sweep keeps one descriptor per connection in flight; the default soft limit (1024) would
/// cap it far below what the machine allows.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
