//! The relay probe: the rules' relay vectors, turned into the concrete envelopes offered to one
//! host and spread over fresh sessions.
//!
//! An accepted vector is an open relay, unless its address is one the host may read as local
//! and the host also accepts an unknown user at that domain (the controls of the backscatter and
//! relay-control probes): then the 250 cannot tell relaying from local delivery, and the host is
//! reported `relay-suspected` with the vectors and how to confirm them, not `open-relay`.

use std::net::IpAddr;

use relayguard_core::rules::RelayVector;
use relayguard_core::scan::{TestKind, Verdict};
use relayguard_core::{Finding, FindingKind, RelayStrength};

use super::backscatter::unknown_user_accepted;
use super::names::{address_literal, is_local_form, is_plain_external, normalized_domain};
use super::{
    Audited, HostFacts, Placement, Probe, SmtpStep, TestRecord, TestSpec, accepted, finding,
};

/// The start of the note on an accepted vector the review could not count as relaying.
pub const SUSPECTED: &str = "accepted, but the 250 cannot tell relaying from local delivery";

/// One envelope per relay vector (per own name for `{host}` vectors).
pub struct Relay;

impl Probe for Relay {
    fn id(&self) -> &'static str {
        "relay"
    }

    fn placement(&self) -> Placement {
        Placement::Spread
    }

    fn plan(&self, host: &HostFacts<'_>) -> Vec<TestSpec> {
        let values = VectorValues {
            from: host.probe_sender,
            to: host.probe_recipient,
            ext: host.external_domain,
            ip: host.ip,
            names: &host.names.routing,
        };
        let fallback_sender = Some(host.fallback_sender());
        expand(&host.rules.relay_vectors, &values)
            .into_iter()
            .map(|env| TestSpec {
                id: env.id,
                // A plainly external recipient accepted is an open relay whatever else the host
                // does: the vectors after it cannot change the verdict.
                decisive: is_plain_external(&env.rcpt_to, host.external_domain),
                step: SmtpStep::Envelope {
                    mail_from: env.mail_from,
                    rcpt_to: env.rcpt_to,
                    fallback_sender: fallback_sender.clone(),
                },
            })
            .collect()
    }

    /// An accepted vector whose address the host may read as local proves nothing when the host
    /// also accepts an unknown user at the same domain (for an address without a domain, at any
    /// of its own names or its literal): it is downgraded to inconclusive with a note saying
    /// which control was accepted.
    fn review(&self, tests: &mut [TestRecord], host: &HostFacts<'_>) {
        let controls: Vec<(Option<String>, bool)> = tests
            .iter()
            .filter(|t| {
                t.result.kind == TestKind::Backscatter || t.result.kind.as_str() == "relay-control"
            })
            .map(|t| {
                (
                    normalized_domain(&t.result.argument),
                    unknown_user_accepted(t),
                )
            })
            .collect();
        let any_local = tests
            .iter()
            .any(|t| t.result.kind == TestKind::Backscatter && unknown_user_accepted(t));
        let kind = self.kind();
        for t in tests.iter_mut() {
            let r = &mut t.result;
            if r.kind != kind
                || r.verdict != Verdict::Accepted
                || !is_local_form(&r.argument, &host.names.routing, host.ip)
            {
                continue;
            }
            let domain = normalized_domain(&r.argument).filter(|d| !d.is_empty());
            let at_domain: Vec<bool> = controls
                .iter()
                .filter(|(d, _)| domain.is_some() && *d == domain)
                .map(|(_, accepted)| *accepted)
                .collect();
            // A domain without its own control (an address with no domain at all) falls back
            // to the host's own names and literal.
            let explained = if at_domain.is_empty() {
                any_local
            } else {
                at_domain.contains(&true)
            };
            if explained {
                let where_ = domain.as_deref().unwrap_or("its own names");
                r.verdict = Verdict::Inconclusive;
                r.note = Some(format!(
                    "{SUSPECTED}: the host also accepts an unknown user at {where_}"
                ));
            }
        }
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let kind = self.kind();
        let total = seen.tests.iter().filter(|t| t.result.kind == kind).count();
        let hits = accepted(seen.tests, &kind);
        if !hits.hits.is_empty() {
            let strength = if hits
                .hits
                .iter()
                .any(|t| is_plain_external(&t.result.argument, seen.external_domain))
            {
                RelayStrength::External
            } else {
                RelayStrength::RoutedForm
            };
            let mut f = finding(
                seen.rules,
                FindingKind::OpenRelay,
                format!(
                    "accepted {} of {} relay tests without authentication ({}): {}",
                    hits.hits.len(),
                    total,
                    hits.ids.join(", "),
                    strength.describe()
                ),
                hits.ids,
                hits.lines,
            );
            f.evidence.relay_strength = Some(strength);
            return vec![f];
        }
        let suspected: Vec<&TestRecord> = seen
            .tests
            .iter()
            .filter(|t| {
                t.result.kind == kind
                    && t.result.verdict == Verdict::Inconclusive
                    && t.result
                        .note
                        .as_deref()
                        .is_some_and(|n| n.starts_with(SUSPECTED))
            })
            .collect();
        if suspected.is_empty() {
            return Vec::new();
        }
        let mut ids: Vec<String> = Vec::new();
        let mut addresses: Vec<&str> = Vec::new();
        for t in &suspected {
            if !ids.contains(&t.result.id) {
                ids.push(t.result.id.clone());
            }
            if !addresses.contains(&t.result.argument.as_str()) {
                addresses.push(&t.result.argument);
            }
        }
        let example = addresses[0].trim_start_matches('<').trim_end_matches('>');
        let server = match seen.ip {
            IpAddr::V4(v4) => format!("{v4}:{}", seen.port),
            IpAddr::V6(v6) => format!("[{v6}]:{}", seen.port),
        };
        vec![finding(
            seen.rules,
            FindingKind::RelaySuspected,
            format!(
                "accepted {} routed or local-form relay vectors ({}: {}) but also accepts unknown users at those domains, so the 250 cannot tell relaying from local delivery (unconfirmed). To confirm, send one message through the host to a mailbox you read: swaks --server {server} --to '{}' with {} replaced by your own domain; delivery there proves relaying",
                suspected.len(),
                ids.join(", "),
                addresses.join(", "),
                example,
                seen.external_domain
            ),
            ids,
            suspected
                .iter()
                .flat_map(|t| t.lines.iter().cloned())
                .collect(),
        )]
    }
}

/// The values that fill a vector's placeholders for one host.
#[derive(Debug, Clone)]
pub struct VectorValues<'a> {
    /// Local part of the probe sender.
    pub from: &'a str,
    /// Local part of the probe recipient.
    pub to: &'a str,
    /// The third-party domain.
    pub ext: &'a str,
    /// The host's address.
    pub ip: IpAddr,
    /// The host's own names (for `{host}`).
    pub names: &'a [String],
}

/// One concrete relay test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayEnvelope {
    /// The vector's id.
    pub id: String,
    /// MAIL FROM argument.
    pub mail_from: String,
    /// RCPT TO argument.
    pub rcpt_to: String,
}

/// Expands every vector for one host. Vectors with `{host}` run once per own name and are
/// skipped when the host gave no name (nmap would send the literal text "nil" instead).
pub fn expand(vectors: &[RelayVector], values: &VectorValues<'_>) -> Vec<RelayEnvelope> {
    let literal = address_literal(values.ip);
    let fill = |template: &str, host: &str| {
        template
            .replace("{from}", values.from)
            .replace("{to}", values.to)
            .replace("{ext}", values.ext)
            .replace("{ip}", &literal)
            .replace("{host}", host)
    };
    let mut out = Vec::new();
    for v in vectors {
        if v.uses_host() {
            for name in values.names {
                out.push(RelayEnvelope {
                    id: v.id.clone(),
                    mail_from: fill(&v.mail_from, name),
                    rcpt_to: fill(&v.rcpt_to, name),
                });
            }
        } else {
            out.push(RelayEnvelope {
                id: v.id.clone(),
                mail_from: fill(&v.mail_from, ""),
                rcpt_to: fill(&v.rcpt_to, ""),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayguard_core::rules::RuleSet;

    #[test]
    fn builtin_vectors_expand_per_name_with_literals() {
        let rules = RuleSet::builtin().unwrap();
        let names = vec!["mx.campus.test".to_string(), "campus.test".to_string()];
        let values = VectorValues {
            from: "probe",
            to: "victim",
            ext: "ext.example",
            ip: "192.0.2.7".parse().unwrap(),
            names: &names,
        };
        let envs = expand(&rules.relay_vectors, &values);
        let with_host = rules.relay_vectors.iter().filter(|v| v.uses_host()).count();
        assert_eq!(envs.len(), rules.relay_vectors.len() + with_host);
        let percent: Vec<_> = envs
            .iter()
            .filter(|e| e.id == "percent-hack-host")
            .collect();
        assert_eq!(percent.len(), 2);
        assert_eq!(percent[0].rcpt_to, "<victim%ext.example@mx.campus.test>");
        assert_eq!(percent[0].mail_from, "<probe@[192.0.2.7]>");
        let null = envs.iter().find(|e| e.id == "null-sender").unwrap();
        assert_eq!(
            (null.mail_from.as_str(), null.rcpt_to.as_str()),
            ("<>", "<victim@ext.example>")
        );
        assert!(
            envs.iter()
                .all(|e| !e.rcpt_to.contains('{') && !e.mail_from.contains('{'))
        );
    }

    #[test]
    fn host_vectors_are_skipped_without_names_and_v6_literals_are_tagged() {
        let rules = RuleSet::builtin().unwrap();
        let values = VectorValues {
            from: "p",
            to: "v",
            ext: "ext.example",
            ip: "2001:db8::25".parse().unwrap(),
            names: &[],
        };
        let envs = expand(&rules.relay_vectors, &values);
        assert!(envs.iter().all(|e| e.id != "percent-hack-host"));
        let ip = envs.iter().find(|e| e.id == "percent-hack-ip").unwrap();
        assert_eq!(ip.rcpt_to, "<v%ext.example@[IPv6:2001:db8::25]>");
    }
}

/// The reviews of the backscatter and relay probes together, on the replies real servers give.
#[cfg(test)]
mod review_tests {
    use relayguard_core::rules::RuleSet;
    use relayguard_core::scan::{TestKind, TestResult, Verdict};
    use relayguard_core::{FindingKind, RelayStrength};

    use super::super::{Audited, HostFacts, OpeningSeen, OwnNames, PROBES, TestRecord};
    use crate::smtp::OpenFailure;

    const EXT: &str = "ext.example";

    fn record(kind: &'static str, id: &str, rcpt: &str, reply: &str) -> TestRecord {
        let verdict = if reply.starts_with("250") {
            Verdict::Accepted
        } else {
            Verdict::Refused
        };
        TestRecord {
            result: TestResult {
                id: id.into(),
                kind: TestKind::new(kind),
                mail_from: Some(format!("<p@{EXT}>")),
                argument: rcpt.into(),
                verdict,
                reply: reply.into(),
                note: None,
                session: 1,
            },
            lines: vec![],
        }
    }

    /// Reviews `tests` as the audit does and returns the kinds found.
    fn judge(tests: &mut [TestRecord]) -> Vec<relayguard_core::Finding> {
        let rules = RuleSet::builtin().unwrap();
        let names = OwnNames {
            routing: vec!["mx.campus.test".into(), "campus.test".into()],
            local: vec!["mx.campus.test".into()],
        };
        let facts = HostFacts {
            ip: "198.51.100.25".parse().unwrap(),
            port: 25,
            names: &names,
            external_domain: EXT,
            probe_sender: "p",
            probe_recipient: "v",
            rules: &rules,
        };
        for probe in PROBES {
            probe.review(tests, &facts);
        }
        let failure = OpenFailure::Lost(crate::smtp::SessionError::Closed);
        let seen = Audited {
            ip: facts.ip,
            external_domain: EXT,
            port: 25,
            rules: &rules,
            opening: OpeningSeen::Failed {
                reason: &failure,
                lines: &[],
            },
            tests,
            desyncs: &[],
        };
        // The fixture has no real opening (a lost first session stands in for one), which the
        // relay-undetermined probe would report; these tests are about the other probes.
        PROBES
            .iter()
            .flat_map(|p| p.findings(&seen))
            .filter(|f| f.kind != FindingKind::RelayUndetermined)
            .collect()
    }

    fn kinds(findings: &[relayguard_core::Finding]) -> Vec<FindingKind> {
        findings.iter().map(|f| f.kind).collect()
    }

    const UNKNOWN: &str = "550 5.1.1 <rg-x@mx.campus.test>: Recipient address rejected: User unknown in local recipient table";

    #[test]
    fn an_open_relay_behind_dnat_is_not_a_backscatter_source() {
        // The audited public address is not one Postfix has, so the literal is relayed.
        let mut tests = vec![
            record(
                "backscatter",
                "backscatter",
                "<rg-a@mx.campus.test>",
                UNKNOWN,
            ),
            record(
                "backscatter",
                "backscatter",
                "<rg-b@[198.51.100.25]>",
                "250 2.1.5 Ok",
            ),
            record(
                "relay-control",
                "relay-control",
                "<rg-c@campus.test>",
                "250 2.1.5 Ok",
            ),
            record(
                "relay",
                "external-sender",
                "<v@ext.example>",
                "250 2.1.5 Ok",
            ),
            record(
                "relay",
                "percent-hack-ip",
                "<v%ext.example@[198.51.100.25]>",
                "250 2.1.5 Ok",
            ),
        ];
        let findings = judge(&mut tests);
        assert_eq!(kinds(&findings), vec![FindingKind::OpenRelay]);
        assert_eq!(
            findings[0].evidence.relay_strength,
            Some(RelayStrength::External)
        );
        assert_eq!(tests[1].result.verdict, Verdict::Inconclusive);
        let note = tests[1].result.note.as_deref().unwrap();
        assert!(note.contains("relays plainly external"), "{note}");
        // The routed form at the literal proves nothing beside the plain relay.
        assert_eq!(tests[4].result.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn a_literal_accepted_where_named_domains_refuse_unknown_users_is_not_backscatter() {
        // Relays only through the literal's domain (not external), refuses unknown local users.
        let mut tests = vec![
            record(
                "backscatter",
                "backscatter",
                "<rg-a@mx.campus.test>",
                UNKNOWN,
            ),
            record(
                "backscatter",
                "backscatter",
                "<rg-b@[198.51.100.25]>",
                "250 2.1.5 Ok",
            ),
            record(
                "relay",
                "external-sender",
                "<v@ext.example>",
                "454 4.7.1 <v@ext.example>: Relay access denied",
            ),
        ];
        let findings = judge(&mut tests);
        assert!(kinds(&findings).is_empty(), "{findings:?}");
        let note = tests[1].result.note.as_deref().unwrap();
        assert!(
            note.contains("refuses unknown users at its own domain mx.campus.test"),
            "{note}"
        );
    }

    #[test]
    fn a_relay_refusal_at_a_named_domain_does_not_discount_the_literal() {
        // "454 Relay access denied" at the banner name says that name is not served here; the
        // literal may well be the host's own local domain.
        let mut tests = vec![
            record(
                "backscatter",
                "backscatter",
                "<rg-a@mx.campus.test>",
                "454 4.7.1 <rg-a@mx.campus.test>: Relay access denied",
            ),
            record(
                "backscatter",
                "backscatter",
                "<rg-b@[198.51.100.25]>",
                "250 2.1.5 Ok",
            ),
        ];
        assert_eq!(
            kinds(&judge(&mut tests)),
            vec![FindingKind::BackscatterSource]
        );
    }

    #[test]
    fn a_catch_all_backup_mx_is_suspected_not_open() {
        let mut tests = vec![
            record(
                "backscatter",
                "backscatter",
                "<rg-a@mx.campus.test>",
                UNKNOWN,
            ),
            record(
                "backscatter",
                "backscatter",
                "<rg-b@[198.51.100.25]>",
                "550 5.1.1 <rg-b@[198.51.100.25]>: User unknown",
            ),
            record(
                "relay-control",
                "relay-control",
                "<rg-c@campus.test>",
                "250 2.1.5 Ok",
            ),
            record(
                "relay",
                "external-sender",
                "<v@ext.example>",
                "554 5.7.1 <v@ext.example>: Relay access denied",
            ),
            record(
                "relay",
                "percent-hack-host",
                "<v%ext.example@campus.test>",
                "250 2.1.5 Ok",
            ),
            record(
                "relay",
                "percent-hack-host",
                "<v%ext.example@mx.campus.test>",
                "550 5.1.1 unknown",
            ),
            record(
                "relay",
                "bang-path-host",
                "<ext.example!v@campus.test>",
                "250 2.1.5 Ok",
            ),
        ];
        let findings = judge(&mut tests);
        assert_eq!(kinds(&findings), vec![FindingKind::RelaySuspected]);
        let summary = &findings[0].summary;
        assert!(
            summary.contains("percent-hack-host, bang-path-host"),
            "{summary}"
        );
        assert!(
            summary.contains("swaks --server 198.51.100.25:25 --to 'v%ext.example@campus.test'"),
            "{summary}"
        );
        assert!(!summary.contains("open relay"), "{summary}");
        assert_eq!(findings[0].evidence.relay_strength, None);
    }

    #[test]
    fn a_routed_form_at_a_domain_that_refuses_unknown_users_is_an_open_relay() {
        // A backup MX with a recipient table that still routes user%ext@domain.
        let mut tests = vec![
            record(
                "backscatter",
                "backscatter",
                "<rg-a@mx.campus.test>",
                UNKNOWN,
            ),
            record(
                "relay-control",
                "relay-control",
                "<rg-c@campus.test>",
                "550 5.1.1 <rg-c@campus.test>: User unknown in relay recipient table",
            ),
            record(
                "relay",
                "external-sender",
                "<v@ext.example>",
                "554 5.7.1 Relay access denied",
            ),
            record(
                "relay",
                "percent-hack-host",
                "<v%ext.example@campus.test>",
                "250 2.1.5 Ok",
            ),
        ];
        let findings = judge(&mut tests);
        assert_eq!(kinds(&findings), vec![FindingKind::OpenRelay]);
        assert_eq!(
            findings[0].evidence.relay_strength,
            Some(RelayStrength::RoutedForm)
        );
        assert!(
            findings[0].summary.contains("routed forms only"),
            "{}",
            findings[0].summary
        );
    }

    #[test]
    fn an_accept_all_sink_stays_suspected_for_unqualified_forms() {
        let mut tests = vec![
            record(
                "backscatter",
                "backscatter",
                "<rg-a@mx.campus.test>",
                "250 2.1.5 Ok",
            ),
            record(
                "relay",
                "quoted-address",
                "<\"v@ext.example\">",
                "250 2.1.5 Ok",
            ),
            record(
                "relay",
                "external-sender",
                "<v@ext.example>",
                "550 5.7.1 no",
            ),
        ];
        let findings = judge(&mut tests);
        assert_eq!(
            kinds(&findings),
            vec![FindingKind::BackscatterSource, FindingKind::RelaySuspected]
        );
    }
}
