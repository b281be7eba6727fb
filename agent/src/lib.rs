//! relayguard host agent: finds mail transfer agents that are installed, enabled at boot,
//! running or listening, and — on hosts whose role is "non-mail" — disables them reversibly.
//!
//! The crate is organised one concern per module:
//! - [`root`]: every file access goes through a [`root::Root`], so `--root DIR` works on images;
//!   [`command`]: the system commands a root has (Solaris SMF), replayable in tests;
//! - [`detect`]: one detector per boot mechanism, each returning findings (the proof) and
//!   harden targets (what could be switched off);
//! - [`live`]: processes and listening sockets of the running host (Linux only);
//! - [`dpkg`]: which installed package provides an MTA;
//! - [`harden`]: turning targets into a plan, journaling every change before making it,
//!   applying changes atomically;
//! - [`revert`]: restoring every journaled path byte for byte;
//! - [`lock`]: one `harden` or `revert` at a time per root;
//! - [`output`] and [`report`]: presenting results and writing the registry report;
//!   [`queue`] and [`maillog`]: a mail server's queue health and bounces for the report.

#![warn(missing_docs)]

pub mod command;
pub mod detect;
pub mod dpkg;
pub mod error;
pub mod fsutil;
pub mod harden;
pub mod live;
pub mod lock;
pub mod maillog;
pub mod mta;
pub mod output;
pub mod queue;
pub mod registry;
pub mod report;
pub mod revert;
pub mod root;

pub use error::AgentError;

use relayguard_core::agent_report::{CheckResult, LiveFacts};

/// Runs every detector on `root` and, on the live root, gathers process and socket facts.
/// Returns the presentable result and the raw detection (with harden targets).
pub fn check(root: &root::Root) -> (CheckResult, detect::Detection) {
    let mut det = detect::detect_all(root);
    let live = if root.is_live() {
        live::gather(&mut det)
    } else {
        LiveFacts::Skipped {
            reason: format!("--root {} is not the running system", root.base().display()),
        }
    };
    det.findings
        .sort_by(|a, b| (a.mta, a.fact, &a.evidence).cmp(&(b.mta, b.fact, &b.evidence)));
    let result = CheckResult {
        root: root.base().display().to_string(),
        live,
        findings: det.findings.clone(),
        warnings: det.warnings.clone(),
    };
    (result, det)
}
