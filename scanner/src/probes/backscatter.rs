//! Backscatter: does the server accept mail for a user it does not have, at RCPT? Then it
//! will bounce spam to forged senders.

use relayguard_core::{Finding, FindingKind};

use super::{
    Audited, HostFacts, Probe, SmtpStep, TestSpec, accepted, finding, names, random_local_part,
};

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
                id: self.id().into(),
                step: SmtpStep::Envelope {
                    mail_from: format!("<{}@{}>", host.probe_sender, host.external_domain),
                    rcpt_to: format!("<{}@{}>", random_local_part(), domain),
                    fallback_sender: fallback_sender.clone(),
                },
            })
            .collect()
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
