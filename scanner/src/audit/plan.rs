//! The test plan for one host: which probes run in the first session and which relay vectors
//! are spread over fresh ones.

use rand::RngExt;
use relayguard_core::scan::TestKind;

use super::Host;
use super::OwnNames;
use crate::probes::names;
use crate::probes::relay::{self, VectorValues};

/// One test to run, in plan order.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) kind: TestKind,
    pub(super) step: Step,
}

#[derive(Debug, Clone)]
pub(super) enum Step {
    /// MAIL FROM, RCPT TO, RSET. When the server refuses the sender itself (at MAIL FROM, or by
    /// sender verification at RCPT), the test is repeated with `fallback_sender`, so the
    /// recipient form still gets an answer.
    Envelope {
        mail_from: String,
        rcpt_to: String,
        fallback_sender: Option<String>,
    },
    Vrfy {
        known: String,
        random: String,
    },
    Expn {
        list: String,
    },
}

/// Splits the work into the first session's tests and the relay tests.
pub(super) fn plan(host: &Host, names: &OwnNames) -> (Vec<Planned>, Vec<Planned>) {
    let config = &host.config;
    let mut tests = vec![
        (
            "vrfy".to_string(),
            TestKind::Vrfy,
            Step::Vrfy {
                known: "postmaster".into(),
                random: random_local_part(),
            },
        ),
        (
            "expn".to_string(),
            TestKind::Expn,
            Step::Expn {
                list: "postmaster".into(),
            },
        ),
    ];
    // RFC 5321 requires every domain's postmaster to exist, so sender verification accepts it.
    let fallback_sender = Some(match names.local.first() {
        Some(name) => format!("<postmaster@{name}>"),
        None => "<>".to_string(),
    });
    // Backscatter: an unknown user at each domain the host may call its own, and at its address
    // literal, which doubles as the control that tells local delivery from relaying.
    let literal = format!("[{}]", names::address_literal(host.addr.ip()));
    for domain in names.local.iter().chain([&literal]) {
        tests.push((
            "backscatter".to_string(),
            TestKind::Backscatter,
            Step::Envelope {
                mail_from: format!("<{}@{}>", config.probe_sender, config.external_domain),
                rcpt_to: format!("<{}@{}>", random_local_part(), domain),
                fallback_sender: fallback_sender.clone(),
            },
        ));
    }

    let values = VectorValues {
        from: &config.probe_sender,
        to: &config.probe_recipient,
        ext: &config.external_domain,
        ip: host.addr.ip(),
        names: &names.routing,
    };
    tests.extend(
        relay::expand(&config.rules.relay_vectors, &values)
            .into_iter()
            .map(|env| {
                let step = Step::Envelope {
                    mail_from: env.mail_from,
                    rcpt_to: env.rcpt_to,
                    fallback_sender: fallback_sender.clone(),
                };
                (env.id, TestKind::Relay, step)
            }),
    );
    // Numbered in one sequence, so results can be put back in plan order.
    tests
        .into_iter()
        .enumerate()
        .map(|(index, (id, kind, step))| Planned {
            index,
            id,
            kind,
            step,
        })
        .partition(|p| p.kind != TestKind::Relay)
}

/// A local part no real mailbox has: `rg-` and 12 random lower-case letters and digits.
fn random_local_part() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("rg-{tail}")
}
