//! relayguard-core: the vocabulary shared by the scanner, the host agent and the registry.
//!
//! Everything that crosses a crate boundary or leaves the process lives here: findings and their
//! severities, the per-host scan result that `relayguard sweep` emits, the evidence transcript,
//! the rule files (relay vectors, MTA fingerprints, severities) and the agent report schema.

pub mod agent_report;
pub mod finding;
pub mod paths;
pub mod rules;
pub mod scan;
pub mod transcript;

pub use finding::{Evidence, Finding, FindingKind, Severity};
pub use transcript::{Direction, Transcript, TranscriptLine};
