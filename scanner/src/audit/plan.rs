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

/// Deals the tests out to sessions: the first session's own probes, topped up with relay tests
/// to `per_session`, and the remaining relay tests in as few fresh sessions of at most
/// `per_session` as will hold them, sized evenly (25 tests make 7, 6, 6, 6 rather than
/// 8, 8, 8, 1: the number of sessions, not their length, sets how long a slow host takes).
pub(super) fn deal(
    mut first: Vec<Planned>,
    relay: Vec<Planned>,
    per_session: usize,
) -> (Vec<Planned>, Vec<Vec<Planned>>) {
    let per_session = per_session.max(1);
    let mut relay = relay.into_iter();
    let room = per_session.saturating_sub(first.len());
    first.extend(relay.by_ref().take(room));
    let rest: Vec<Planned> = relay.collect();
    let sessions = rest.len().div_ceil(per_session);
    let mut chunks = Vec::with_capacity(sessions);
    let mut rest = rest.into_iter();
    for i in 0..sessions {
        // What is left, shared by the sessions still to fill, rounded up.
        let size = rest.len().div_ceil(sessions - i);
        chunks.push(rest.by_ref().take(size).collect());
    }
    (first, chunks)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(n: usize, kind: TestKind) -> Vec<Planned> {
        (0..n)
            .map(|index| Planned {
                index,
                id: format!("t{index}"),
                kind,
                step: Step::Expn { list: "x".into() },
            })
            .collect()
    }

    fn sizes(first: usize, relay: usize, per_session: usize) -> (usize, Vec<usize>) {
        let (f, chunks) = deal(
            planned(first, TestKind::Vrfy),
            planned(relay, TestKind::Relay),
            per_session,
        );
        (f.len(), chunks.iter().map(Vec::len).collect())
    }

    #[test]
    fn the_first_session_is_topped_up_and_the_rest_dealt_evenly() {
        // The campus case: 4 probes and 25 relay vectors.
        assert_eq!(sizes(4, 25, 8), (8, vec![7, 7, 7]));
        assert_eq!(sizes(4, 26, 8), (8, vec![8, 7, 7]));
        assert_eq!(sizes(4, 29, 8), (8, vec![7, 6, 6, 6]));
        assert_eq!(sizes(4, 3, 8), (7, vec![]));
        // More probes than fit: the first session keeps them all, no relay test joins.
        assert_eq!(sizes(9, 5, 8), (9, vec![5]));
        assert_eq!(sizes(0, 0, 8), (0, vec![]));
        assert_eq!(sizes(2, 10, 1), (2, vec![1; 10]));
    }

    #[test]
    fn every_test_is_dealt_once_in_plan_order() {
        let (first, chunks) = deal(planned(3, TestKind::Vrfy), planned(40, TestKind::Relay), 6);
        let relay: Vec<usize> = first
            .iter()
            .filter(|p| p.kind == TestKind::Relay)
            .chain(chunks.iter().flatten())
            .map(|p| p.index)
            .collect();
        assert_eq!(relay, (0..40).collect::<Vec<_>>());
        assert!(chunks.iter().all(|c| c.len() <= 6));
    }
}
