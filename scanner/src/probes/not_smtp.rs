//! A listener on a mail port that does not speak SMTP.

use relayguard_core::{Finding, FindingKind};

use super::{Audited, OpeningSeen, Probe, finding};
use crate::smtp::OpenFailure;

/// Reads why the opening failed.
pub struct NotSmtp;

impl Probe for NotSmtp {
    fn id(&self) -> &'static str {
        "not-smtp"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        match seen.opening {
            OpeningSeen::Failed {
                reason: OpenFailure::NotSmtp(what),
                lines,
            } => vec![finding(
                seen.rules,
                FindingKind::NotSmtp,
                format!("the service on this port does not speak SMTP ({what})"),
                Vec::new(),
                lines.to_vec(),
            )],
            _ => Vec::new(),
        }
    }
}
