//! Findings: what relayguard reports about a host, with how bad it is and the proof.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::transcript::TranscriptLine;

/// How urgent a finding is. Ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, nothing to fix.
    Info,
    /// A hygiene or deliverability problem.
    Low,
    /// A weakness an attacker can use with some effort.
    Medium,
    /// Abusable as it is, e.g. a backscatter source.
    High,
    /// Being abused or trivially abusable, e.g. an open relay.
    Critical,
}

impl Severity {
    /// The stable lower-case name used in rules and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The rank stored beside the name in the registry, so that "this severity or worse" is a
    /// numeric comparison in SQL: 0 for info up to 4 for critical. Stable: stored rows rely on it.
    pub fn rank(self) -> i64 {
        match self {
            Severity::Info => 0,
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High => 3,
            Severity::Critical => 4,
        }
    }

    /// The severity of a stored [`rank`](Severity::rank), if it is one.
    pub fn from_rank(rank: i64) -> Option<Severity> {
        match rank {
            0 => Some(Severity::Info),
            1 => Some(Severity::Low),
            2 => Some(Severity::Medium),
            3 => Some(Severity::High),
            4 => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable identifiers of finding kinds (documented in docs/findings.md).
///
/// The serialized names are part of the output contract: scripts and the registry key on them,
/// so a variant may be added but never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A relay vector was accepted at RCPT without authentication.
    OpenRelay,
    /// A random unknown local recipient was accepted at RCPT: bounces will go to forged senders.
    BackscatterSource,
    /// VRFY tells existing users apart from unknown ones.
    VrfyEnabled,
    /// EXPN expands mailing lists or aliases.
    ExpnEnabled,
    /// AUTH PLAIN or LOGIN is offered on a connection that is not encrypted.
    AuthBeforeTls,
    /// Port 25 or 587 does not offer STARTTLS.
    NoStarttls,
    /// The certificate presented over TLS does not validate for the host.
    TlsCertificateInvalid,
    /// STARTTLS was offered but the TLS handshake failed (often TLS 1.0/1.1 only).
    TlsHandshakeFailed,
    /// The server sent bytes after its 220 reply to STARTTLS (CVE-2011-0411 class).
    StarttlsInjection,
    /// Something listens on a mail port but does not speak SMTP.
    NotSmtp,
    /// An SMTP listener on a host with no mail role in the registry.
    UnregisteredMta,
    /// A host registered as non-mail answers SMTP.
    NonMailHostListening,
    /// The address has no PTR record.
    NoPtr,
    /// The PTR name does not resolve back to the address (no forward-confirmed reverse DNS).
    PtrNotConfirmed,
    /// The PTR name looks generic or dynamic (S25R-style), which receivers penalise.
    GenericPtr,
    /// The address is listed on a DNS blocklist.
    DnsblListed,
    /// An MX target of a campus zone is not a registered mail server.
    MxUnregistered,
    /// An MX target of a campus zone does not answer SMTP.
    MxNotAnswering,
    /// An MX target publishes an AAAA record but does not answer SMTP over IPv6.
    MxIpv6Unreachable,
    /// A registration's host name and address disagree in DNS.
    RegistrationDnsMismatch,
    /// (registry) A registered mail server did not answer SMTP in the last sweeps that covered it.
    RegistrationStale,
    /// (registry) A registration's periodic review is overdue.
    RegistrationExpired,
    /// (registry) The agent of a host registered as non-mail reports an MTA enabled or running.
    MtaEnabledOnNonMailHost,
}

impl FindingKind {
    /// Every kind, in documentation order.
    pub const ALL: [FindingKind; 23] = [
        FindingKind::OpenRelay,
        FindingKind::BackscatterSource,
        FindingKind::VrfyEnabled,
        FindingKind::ExpnEnabled,
        FindingKind::AuthBeforeTls,
        FindingKind::NoStarttls,
        FindingKind::TlsCertificateInvalid,
        FindingKind::TlsHandshakeFailed,
        FindingKind::StarttlsInjection,
        FindingKind::NotSmtp,
        FindingKind::UnregisteredMta,
        FindingKind::NonMailHostListening,
        FindingKind::NoPtr,
        FindingKind::PtrNotConfirmed,
        FindingKind::GenericPtr,
        FindingKind::DnsblListed,
        FindingKind::MxUnregistered,
        FindingKind::MxNotAnswering,
        FindingKind::MxIpv6Unreachable,
        FindingKind::RegistrationDnsMismatch,
        FindingKind::RegistrationStale,
        FindingKind::RegistrationExpired,
        FindingKind::MtaEnabledOnNonMailHost,
    ];

    /// The stable kebab-case identifier, e.g. `open-relay`.
    pub fn id(self) -> &'static str {
        match self {
            FindingKind::OpenRelay => "open-relay",
            FindingKind::BackscatterSource => "backscatter-source",
            FindingKind::VrfyEnabled => "vrfy-enabled",
            FindingKind::ExpnEnabled => "expn-enabled",
            FindingKind::AuthBeforeTls => "auth-before-tls",
            FindingKind::NoStarttls => "no-starttls",
            FindingKind::TlsCertificateInvalid => "tls-certificate-invalid",
            FindingKind::TlsHandshakeFailed => "tls-handshake-failed",
            FindingKind::StarttlsInjection => "starttls-injection",
            FindingKind::NotSmtp => "not-smtp",
            FindingKind::UnregisteredMta => "unregistered-mta",
            FindingKind::NonMailHostListening => "non-mail-host-listening",
            FindingKind::NoPtr => "no-ptr",
            FindingKind::PtrNotConfirmed => "ptr-not-confirmed",
            FindingKind::GenericPtr => "generic-ptr",
            FindingKind::DnsblListed => "dnsbl-listed",
            FindingKind::MxUnregistered => "mx-unregistered",
            FindingKind::MxNotAnswering => "mx-not-answering",
            FindingKind::MxIpv6Unreachable => "mx-ipv6-unreachable",
            FindingKind::RegistrationDnsMismatch => "registration-dns-mismatch",
            FindingKind::RegistrationStale => "registration-stale",
            FindingKind::RegistrationExpired => "registration-expired",
            FindingKind::MtaEnabledOnNonMailHost => "mta-enabled-on-non-mail-host",
        }
    }

    /// The severity used when the rules do not override it.
    pub fn default_severity(self) -> Severity {
        match self {
            FindingKind::OpenRelay => Severity::Critical,
            FindingKind::BackscatterSource
            | FindingKind::StarttlsInjection
            | FindingKind::DnsblListed => Severity::High,
            FindingKind::AuthBeforeTls
            | FindingKind::UnregisteredMta
            | FindingKind::NonMailHostListening
            | FindingKind::MxUnregistered
            | FindingKind::MxNotAnswering
            | FindingKind::MxIpv6Unreachable
            | FindingKind::MtaEnabledOnNonMailHost => Severity::Medium,
            FindingKind::NoPtr
            | FindingKind::PtrNotConfirmed
            | FindingKind::GenericPtr
            | FindingKind::RegistrationDnsMismatch
            | FindingKind::VrfyEnabled
            | FindingKind::ExpnEnabled
            | FindingKind::NoStarttls
            | FindingKind::TlsCertificateInvalid
            | FindingKind::TlsHandshakeFailed
            | FindingKind::RegistrationStale
            | FindingKind::RegistrationExpired => Severity::Low,
            FindingKind::NotSmtp => Severity::Info,
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The error for an unknown finding-kind identifier.
#[derive(Debug, thiserror::Error)]
#[error("unknown finding kind {0:?} (known: {known})", known = FindingKind::ALL.map(|k| k.id()).join(", "))]
pub struct UnknownFindingKind(pub String);

impl FromStr for FindingKind {
    type Err = UnknownFindingKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FindingKind::ALL
            .into_iter()
            .find(|k| k.id() == s)
            .ok_or_else(|| UnknownFindingKind(s.to_string()))
    }
}

/// The proof behind a finding: which tests triggered it and the conversation that shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Identifiers of the tests (e.g. relay vectors) that produced the finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<String>,
    /// The transcript lines that show the behaviour, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<TranscriptLine>,
}

/// One problem found on one host and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of problem this is.
    pub kind: FindingKind,
    /// How urgent it is (from the rules, else the kind's default).
    pub severity: Severity,
    /// One sentence for a human.
    pub summary: String,
    /// The proof.
    pub evidence: Evidence,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_ids_round_trip_through_serde_and_from_str() {
        for kind in FindingKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.id()));
            assert_eq!(kind.id().parse::<FindingKind>().unwrap(), kind);
        }
        assert!("open_relay".parse::<FindingKind>().is_err());
    }

    #[test]
    fn severities_order_from_info_to_critical() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Info);
        assert_eq!(
            FindingKind::OpenRelay.default_severity(),
            Severity::Critical
        );
    }

    #[test]
    fn ranks_follow_the_order_and_round_trip() {
        let all = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        for pair in all.windows(2) {
            assert!(pair[0].rank() < pair[1].rank());
        }
        for s in all {
            assert_eq!(Severity::from_rank(s.rank()), Some(s));
        }
        assert_eq!(Severity::from_rank(5), None);
        assert_eq!(Severity::from_rank(-1), None);
    }
}
