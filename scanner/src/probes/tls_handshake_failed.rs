//! STARTTLS offered but TLS not established (refused, or the handshake failed).

use relayguard_core::{Finding, FindingKind};

use super::{Audited, Probe, finding};

/// Reads the opening's TLS attempt, including a failed one before a plaintext reopening.
pub struct TlsHandshakeFailed;

impl Probe for TlsHandshakeFailed {
    fn id(&self) -> &'static str {
        "tls-handshake-failed"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let Some((smtp, lines)) = seen.opening.opened() else {
            return Vec::new();
        };
        match &smtp.tls {
            Some(tls) if !tls.established => vec![finding(
                seen.rules,
                FindingKind::TlsHandshakeFailed,
                format!(
                    "TLS could not be established: {}",
                    tls.error.as_deref().unwrap_or("unknown reason")
                ),
                Vec::new(),
                lines.to_vec(),
            )],
            _ => Vec::new(),
        }
    }
}
