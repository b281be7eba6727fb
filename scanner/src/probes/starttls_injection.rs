//! Plaintext bytes after the 220 reply to STARTTLS, before the handshake: a server that
//! buffers them across the upgrade lets an attacker inject commands into the TLS session.

use relayguard_core::{Finding, FindingKind};

use super::{Audited, OpeningSeen, Probe, finding};

/// Reads what the opening saw after STARTTLS.
pub struct StarttlsInjection;

impl Probe for StarttlsInjection {
    fn id(&self) -> &'static str {
        "starttls-injection"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        match seen.opening {
            OpeningSeen::Opened {
                starttls_injection: Some(bytes),
                lines,
                ..
            } => vec![finding(
                seen.rules,
                FindingKind::StarttlsInjection,
                format!("sent plaintext after its 220 reply to STARTTLS: {bytes:?}"),
                Vec::new(),
                lines.to_vec(),
            )],
            _ => Vec::new(),
        }
    }
}
