//! AUTH PLAIN or LOGIN offered before TLS: passwords could cross the network in clear text.

use relayguard_core::{Finding, FindingKind};

use super::{Audited, Probe, finding};

/// Reads the plaintext EHLO reply of the opening.
pub struct AuthBeforeTls;

impl Probe for AuthBeforeTls {
    fn id(&self) -> &'static str {
        "auth-before-tls"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let Some((smtp, lines)) = seen.opening.opened() else {
            return Vec::new();
        };
        let mechs: Vec<&str> = smtp
            .auth_before_tls
            .iter()
            .map(String::as_str)
            .filter(|m| *m == "PLAIN" || *m == "LOGIN")
            .collect();
        if mechs.is_empty() {
            return Vec::new();
        }
        vec![finding(
            seen.rules,
            FindingKind::AuthBeforeTls,
            format!(
                "offers AUTH {} before TLS: passwords can cross the network in clear text",
                mechs.join(" ")
            ),
            Vec::new(),
            lines.to_vec(),
        )]
    }
}
