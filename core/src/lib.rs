//! relayguard-core: the vocabulary shared by the scanner, the host agent and the registry.
//!
//! Everything that crosses a crate boundary or leaves the process lives here: findings and their
//! severities, the per-host scan result that `relayguard sweep` emits, the evidence transcript,
//! the rule files (relay vectors, MTA fingerprints, severities), the agent report schema, and
//! the registry's wire contracts (the sweep upload, a registration's role and status).

pub mod agent_report;
pub mod exit;
pub mod finding;
pub mod paths;
pub mod registration;
pub mod rules;
pub mod scan;
pub mod sweep;
pub mod text;
pub mod transcript;

pub use finding::{Evidence, Finding, FindingKind, RelayStrength, Severity};
pub use registration::{HostStatus, Role, RoleResponse};
pub use sweep::{SweepMeta, SweepUpload};
pub use text::escape_controls;
pub use transcript::{Direction, Transcript, TranscriptLine};
