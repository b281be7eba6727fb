//! The relay probe: the rules' relay vectors, turned into the concrete envelopes offered to one
//! host and spread over fresh sessions; an accepted vector is an open relay, unless the host
//! accepts any local recipient and the address is one it may read as local.

use std::net::IpAddr;

use relayguard_core::rules::RelayVector;
use relayguard_core::scan::{TestKind, Verdict};
use relayguard_core::{Finding, FindingKind};

use super::names::{address_literal, is_local_form};
use super::{
    Audited, HostFacts, Placement, Probe, SmtpStep, TestRecord, TestSpec, accepted, finding,
};

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
                step: SmtpStep::Envelope {
                    mail_from: env.mail_from,
                    rcpt_to: env.rcpt_to,
                    fallback_sender: fallback_sender.clone(),
                },
            })
            .collect()
    }

    /// On a host that accepts any local recipient (its backscatter control was accepted), an
    /// accepted vector whose address the host would read as local proves nothing: it is
    /// downgraded to inconclusive.
    fn review(&self, tests: &mut [TestRecord], host: &HostFacts<'_>) {
        let accepts_any_local = tests.iter().any(|t| {
            t.result.kind == TestKind::Backscatter && t.result.verdict == Verdict::Accepted
        });
        if !accepts_any_local {
            return;
        }
        let kind = self.kind();
        for t in tests.iter_mut() {
            let r = &mut t.result;
            if r.kind == kind
                && r.verdict == Verdict::Accepted
                && is_local_form(&r.argument, &host.names.routing, host.ip)
            {
                r.verdict = Verdict::Inconclusive;
                r.note = Some(
                    "accepted, but this host accepts any local recipient and may deliver this address locally"
                        .into(),
                );
            }
        }
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let kind = self.kind();
        let hits = accepted(seen.tests, &kind);
        if hits.hits.is_empty() {
            return Vec::new();
        }
        let total = seen.tests.iter().filter(|t| t.result.kind == kind).count();
        vec![finding(
            seen.rules,
            FindingKind::OpenRelay,
            format!(
                "accepted {} of {} relay tests without authentication ({})",
                hits.hits.len(),
                total,
                hits.ids.join(", ")
            ),
            hits.ids,
            hits.lines,
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
