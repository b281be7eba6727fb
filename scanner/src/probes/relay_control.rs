//! Relay controls: an unknown user at each domain the `{host}` relay vectors route through that
//! the backscatter probe does not already cover (the guessed parent domain of the host's name).
//!
//! A backup MX with an empty `relay_recipient_maps` accepts any recipient at the domain it backs
//! up, `user%ext@domain` included, and forwards it to the primary: the 250 alone cannot tell
//! relaying from ordinary delivery there. The relay probe's review compares every accepted
//! routed vector with the control at its domain; these tests raise no finding of their own (an
//! open relay would accept anything at a guessed domain).

use super::{HostFacts, Probe, SmtpStep, TestSpec, random_local_part};

/// One envelope per routing-only own name: an external sender, a random unknown local part.
pub struct RelayControl;

impl Probe for RelayControl {
    fn id(&self) -> &'static str {
        "relay-control"
    }

    fn plan(&self, host: &HostFacts<'_>) -> Vec<TestSpec> {
        let fallback_sender = Some(host.fallback_sender());
        host.names
            .routing
            .iter()
            .filter(|name| !host.names.local.contains(name))
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
}
