//! No STARTTLS on a port that should offer it (every port but 465, which is TLS from the start).

use relayguard_core::{Finding, FindingKind};

use super::{Audited, Probe, finding};

/// Reads whether the opening's EHLO reply offered STARTTLS.
pub struct NoStarttls;

impl Probe for NoStarttls {
    fn id(&self) -> &'static str {
        "no-starttls"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        match seen.opening.opened() {
            Some((smtp, lines)) if seen.port != 465 && !smtp.starttls => vec![finding(
                seen.rules,
                FindingKind::NoStarttls,
                format!("port {} does not offer STARTTLS", seen.port),
                Vec::new(),
                lines.to_vec(),
            )],
            _ => Vec::new(),
        }
    }
}
