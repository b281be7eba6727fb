//! Backscatter: does the server accept mail for a user it does not have, at RCPT? Then it
//! will bounce spam to forged senders.
//!
//! The test at the address literal needs care. Behind a DNAT (a firewall, a load balancer, a
//! port forward) the audited address is not one the server has: it reads `rg-…@[public IP]` as
//! mail for another host, so an open relay accepts it as relaying, not as a local user. The
//! review reads the literal in the light of the whole audit: when the host refuses the unknown
//! user at one of its named domains, or relays a plainly external recipient, an accepted literal
//! is no evidence of backscatter.

use relayguard_core::scan::{TestKind, Verdict};
use relayguard_core::{Finding, FindingKind};

use super::names::{is_plain_external, normalized_domain};
use super::{
    Audited, HostFacts, Probe, SmtpStep, TestRecord, TestSpec, accepted, finding, names,
    random_local_part,
};

/// The start of the note on an accepted address-literal test that the review discounted.
pub const LITERAL_DISCOUNTED: &str = "accepted at the address literal, but not backscatter";

/// Whether a refusal is about the recipient (Postfix's `550 5.1.1 … User unknown in local
/// recipient table`) rather than a refusal to relay to that domain (`454 4.7.1 Relay access
/// denied`), which says the name is not one the host serves.
fn refuses_the_user(reply: &str) -> bool {
    let reply = reply.to_ascii_lowercase();
    !reply.contains("relay") && !reply.contains(" 5.7.") && !reply.contains(" 4.7.")
}

/// Whether `t` is a control (a backscatter or relay-control test) whose unknown user was
/// accepted at RCPT, including a literal the review discounted as evidence of backscatter: for
/// the relay probe it still shows that the 250 there says nothing.
pub fn unknown_user_accepted(t: &TestRecord) -> bool {
    let r = &t.result;
    (r.kind == TestKind::Backscatter || r.kind.as_str() == "relay-control")
        && (r.verdict == Verdict::Accepted
            || r.note
                .as_deref()
                .is_some_and(|n| n.starts_with(LITERAL_DISCOUNTED)))
}

/// An unknown user at each domain the host may call its own, and at its address literal, which
/// doubles as the control that tells local delivery from relaying (see the relay probe's
/// review).
pub struct Backscatter;

impl Probe for Backscatter {
    fn id(&self) -> &'static str {
        "backscatter"
    }

    fn plan(&self, host: &HostFacts<'_>) -> Vec<TestSpec> {
        let literal = format!("[{}]", names::address_literal(host.ip));
        let fallback_sender = Some(host.fallback_sender());
        host.names
            .local
            .iter()
            .chain([&literal])
            .map(|domain| TestSpec {
                decisive: false,
                id: self.id().into(),
                step: SmtpStep::Envelope {
                    mail_from: format!("<{}@{}>", host.probe_sender, host.external_domain),
                    rcpt_to: format!("<{}@{}>", random_local_part(), domain),
                    fallback_sender: fallback_sender.clone(),
                },
            })
            .collect()
    }

    /// Discounts an accepted address literal when the named domains or the relay tests explain
    /// it: see the module documentation.
    fn review(&self, tests: &mut [TestRecord], host: &HostFacts<'_>) {
        let kind = self.kind();
        let literal = format!("[{}]", names::address_literal(host.ip)).to_ascii_lowercase();
        let at_literal =
            |t: &TestRecord| normalized_domain(&t.result.argument).as_ref() == Some(&literal);
        let named_refuses = tests
            .iter()
            .find(|t| {
                t.result.kind == kind
                    && !at_literal(t)
                    && t.result.verdict == Verdict::Refused
                    && refuses_the_user(&t.result.reply)
            })
            .and_then(|t| normalized_domain(&t.result.argument));
        let relays_external = tests
            .iter()
            .find(|t| {
                t.result.kind == TestKind::Relay
                    && t.result.verdict == Verdict::Accepted
                    && is_plain_external(&t.result.argument, host.external_domain)
            })
            .map(|t| t.result.argument.clone());
        let why = match (named_refuses, relays_external) {
            (_, Some(external)) => format!(
                "the host relays plainly external recipients ({external} was accepted): it accepts any recipient, so the literal says nothing about its local users"
            ),
            (Some(domain), None) => format!(
                "the host refuses unknown users at its own domain {domain}: the literal is not an address it serves (behind NAT or a port forward it is the public address) and the 250 is relaying, not local delivery"
            ),
            (None, None) => return,
        };
        for t in tests.iter_mut() {
            if t.result.kind == kind && t.result.verdict == Verdict::Accepted && at_literal(t) {
                t.result.verdict = Verdict::Inconclusive;
                t.result.note = Some(format!("{LITERAL_DISCOUNTED}: {why}"));
            }
        }
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let hits = accepted(seen.tests, &self.kind());
        if hits.hits.is_empty() {
            return Vec::new();
        }
        let addresses: Vec<&str> = hits
            .hits
            .iter()
            .map(|t| t.result.argument.as_str())
            .collect();
        vec![finding(
            seen.rules,
            FindingKind::BackscatterSource,
            format!(
                "accepts mail for unknown local users at RCPT ({}); it will bounce spam to forged senders",
                addresses.join(", ")
            ),
            hits.ids,
            hits.lines,
        )]
    }
}
