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

/// Declares every finding kind once: its variant, stable id, default severity and doc line.
///
/// The enum, [`FindingKind::ALL`], [`FindingKind::id`], [`FindingKind::default_severity`],
/// [`FindingKind::doc`] and the serialized names all come from this one list, so they cannot
/// drift; `rules/severities.yaml` and the table in `docs/findings.md` are checked against it by
/// the tests below.
macro_rules! finding_kinds {
    ($($variant:ident = $id:literal, $severity:ident, $doc:literal;)*) => {
        /// The stable identifiers of finding kinds (documented in docs/findings.md).
        ///
        /// The serialized names are part of the output contract: scripts and the registry key on
        /// them, so a variant may be added but never renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum FindingKind {
            $(
                #[doc = $doc]
                #[serde(rename = $id)]
                $variant,
            )*
        }

        impl FindingKind {
            /// Every kind, in declaration order.
            pub const ALL: [FindingKind; [$($id),*].len()] = [$(FindingKind::$variant),*];

            /// The stable kebab-case identifier, e.g. `open-relay`.
            pub fn id(self) -> &'static str {
                match self {
                    $(FindingKind::$variant => $id,)*
                }
            }

            /// The severity used when the rules do not override it.
            pub fn default_severity(self) -> Severity {
                match self {
                    $(FindingKind::$variant => Severity::$severity,)*
                }
            }

            /// One line saying when the kind is raised.
            pub fn doc(self) -> &'static str {
                match self {
                    $(FindingKind::$variant => $doc,)*
                }
            }
        }
    };
}

finding_kinds! {
    OpenRelay = "open-relay", Critical,
        "A relay vector was accepted at RCPT without authentication.";
    RelaySuspected = "relay-suspected", Medium,
        "A routed or local-form relay vector was accepted on a host whose 250 cannot tell relaying from local delivery.";
    BackscatterSource = "backscatter-source", High,
        "A random unknown local recipient was accepted at RCPT: bounces will go to forged senders.";
    VrfyEnabled = "vrfy-enabled", Low,
        "VRFY tells existing users apart from unknown ones.";
    ExpnEnabled = "expn-enabled", Low,
        "EXPN expands mailing lists or aliases.";
    AuthBeforeTls = "auth-before-tls", Medium,
        "AUTH PLAIN or LOGIN is offered on a connection that is not encrypted.";
    NoStarttls = "no-starttls", Low,
        "Port 25 or 587 does not offer STARTTLS.";
    TlsCertificateInvalid = "tls-certificate-invalid", Low,
        "The certificate presented over TLS does not validate for the host.";
    TlsHandshakeFailed = "tls-handshake-failed", Low,
        "STARTTLS was offered but the TLS handshake failed (often TLS 1.0/1.1 only).";
    StarttlsInjection = "starttls-injection", High,
        "The server sent bytes after its 220 reply to STARTTLS (CVE-2011-0411 class).";
    NotSmtp = "not-smtp", Info,
        "Something listens on a mail port but does not speak SMTP.";
    SmtpDesync = "smtp-desync", Info,
        "The server sent data when no reply was due; the audit discarded those sessions' verdicts.";
    RelayUndetermined = "relay-undetermined", Info,
        "No relay verdict was reached this time (every relay test inconclusive, or no session).";
    UnregisteredMta = "unregistered-mta", Medium,
        "An SMTP listener on a host with no mail role in the registry.";
    NonMailHostListening = "non-mail-host-listening", Medium,
        "A host registered as non-mail answers SMTP.";
    ReachableFromOutside = "reachable-from-outside", High,
        "A host not registered as mail-direct answers SMTP from a vantage the registry marks external: the firewall lets it through.";
    NoPtr = "no-ptr", Low,
        "The address has no PTR record.";
    PtrNotConfirmed = "ptr-not-confirmed", Low,
        "The PTR name does not resolve back to the address (no forward-confirmed reverse DNS).";
    GenericPtr = "generic-ptr", Low,
        "The PTR name looks generic or dynamic (S25R-style), which receivers penalise.";
    DnsblListed = "dnsbl-listed", High,
        "The address is listed on a DNS blocklist.";
    MxUnregistered = "mx-unregistered", Medium,
        "An MX target of a campus zone is not a registered mail server.";
    MxNotAnswering = "mx-not-answering", Medium,
        "An MX target of a campus zone does not answer SMTP.";
    MxIpv6Unreachable = "mx-ipv6-unreachable", Medium,
        "An MX target publishes an AAAA record but does not answer SMTP over IPv6.";
    RegistrationDnsMismatch = "registration-dns-mismatch", Low,
        "A registration's host name and address disagree in DNS.";
    RegistrationStale = "registration-stale", Low,
        "A registered mail server did not answer SMTP in the last two sweeps that covered it.";
    RegistrationExpired = "registration-expired", Low,
        "A registration's periodic review is overdue.";
    MtaEnabledOnNonMailHost = "mta-enabled-on-non-mail-host", Medium,
        "A host registered as non-mail has an MTA enabled at boot or running, as its agent reports.";
    MtaReappeared = "mta-reappeared", Medium,
        "An MTA the host agent had switched off came back (an upgrade, a new dependency); it was switched off again.";
    MailQueueBacklog = "mail-queue-backlog", Medium,
        "A registered mail server's agent reports a mail queue over the backlog threshold.";
    BounceBurst = "bounce-burst", Medium,
        "A registered mail server's agent reports many bounces: queued with the null sender, or generated since its last report.";
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The error for an unknown finding-kind identifier.
#[derive(Debug, thiserror::Error)]
#[error("unknown finding kind {0:?} (known: {known})", known = FindingKind::ALL.map(FindingKind::id).join(", "))]
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

/// How strongly an `open-relay` verdict is proven, from the strongest down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelayStrength {
    /// Only routed or local forms (`user%ext@host`, `ext!user@host`, ...) were accepted, on a
    /// host that refuses unknown users at those domains: the host takes them for forwarding,
    /// but whether the next hop delivers them to the external domain is not seen at RCPT.
    RoutedForm,
    /// A plainly external recipient (`user@external`) was accepted at RCPT: conclusive.
    External,
    /// A message sent through the host arrived at the auditor's own sink.
    Delivered,
}

impl RelayStrength {
    /// The stable kebab-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayStrength::RoutedForm => "routed-form",
            RelayStrength::External => "external",
            RelayStrength::Delivered => "delivered",
        }
    }

    /// One phrase for a human: what the verdict rests on.
    pub fn describe(self) -> &'static str {
        match self {
            RelayStrength::RoutedForm => {
                "accepted at RCPT for routed forms only (user%ext@host and the like); not confirmed by delivery"
            }
            RelayStrength::External => {
                "accepted at RCPT for a plainly external recipient (conclusive)"
            }
            RelayStrength::Delivered => "confirmed by delivery to the auditor's own sink",
        }
    }
}

impl fmt::Display for RelayStrength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The proof behind a finding: which tests triggered it and the conversation that shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// For `open-relay`: what the verdict rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_strength: Option<RelayStrength>,
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

    /// The kinds table of docs/findings.md: `(id, severity)` per row.
    fn documented_kinds() -> Vec<(String, String)> {
        include_str!("../../docs/findings.md")
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let id = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((id.to_string(), cells.next()?.to_string()))
            })
            .collect()
    }

    #[test]
    fn docs_findings_md_lists_every_kind_once_with_its_default_severity() {
        let documented = documented_kinds();
        for kind in FindingKind::ALL {
            let rows: Vec<&(String, String)> = documented
                .iter()
                .filter(|(id, _)| id == kind.id())
                .collect();
            assert_eq!(
                rows.len(),
                1,
                "docs/findings.md: {} rows for {kind}",
                rows.len()
            );
            assert_eq!(
                rows[0].1,
                kind.default_severity().as_str(),
                "docs/findings.md misstates the severity of {kind}"
            );
        }
        for (id, _) in &documented {
            assert!(
                id.parse::<FindingKind>().is_ok(),
                "docs/findings.md documents {id}, which is not a finding kind"
            );
        }
    }

    #[test]
    fn doc_lines_are_single_sentences() {
        for kind in FindingKind::ALL {
            let doc = kind.doc();
            assert!(doc.ends_with('.') && !doc.contains('\n'), "{kind}: {doc:?}");
        }
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
