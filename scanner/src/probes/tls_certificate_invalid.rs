//! A TLS certificate that does not validate for the host.

use relayguard_core::{Finding, FindingKind};

use super::{Audited, Probe, finding};

/// Reads the opening's TLS handshake.
pub struct TlsCertificateInvalid;

impl Probe for TlsCertificateInvalid {
    fn id(&self) -> &'static str {
        "tls-certificate-invalid"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let Some((smtp, lines)) = seen.opening.opened() else {
            return Vec::new();
        };
        match &smtp.tls {
            Some(tls) if tls.established && !tls.certificate_valid => {
                let subject = tls.chain.first().map_or("", |c| c.subject.as_str());
                vec![finding(
                    seen.rules,
                    FindingKind::TlsCertificateInvalid,
                    format!(
                        "certificate {subject:?} does not validate for {}: {}",
                        tls.checked_name,
                        tls.error.as_deref().unwrap_or("unknown reason")
                    ),
                    Vec::new(),
                    lines.to_vec(),
                )]
            }
            _ => Vec::new(),
        }
    }
}
