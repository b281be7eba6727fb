//! Sessions per host follow the server's pace: real Postfix on loopback (tests run as root).
//!
//! A relay that answers every RCPT after a second (its recipient lookup is slow, it does not
//! punish errors) gets its remaining tests spread over more sessions, up to the host's limit;
//! a server that answers at once keeps the sessions its tests fill. On the slow one even the
//! first session's own tests are shared out. Either way each test runs once and the verdicts
//! are those of a relay answering at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use relayguard_core::FindingKind;
use relayguard_core::scan::{HostResult, TestKind, Verdict};
use relayguard_scanner::smtp::SessionConfig;
use relayguard_scanner::{AuditConfig, Pacer};
use relayguard_testkit::{Personality, Postfix, scanner_source_addr};

/// The host's session limit in these tests: more than the tests fill at 8 a session.
const SESSIONS: usize = 8;

async fn audit(pf: &Postfix) -> HostResult {
    let config = Arc::new(AuditConfig {
        session: SessionConfig {
            source: Some(scanner_source_addr().into()),
            ..relayguard_testkit::audit_config().session
        },
        command_timeout: Duration::from_secs(10),
        host_deadline: Duration::from_secs(90),
        sessions_per_host: SESSIONS,
        tests_per_session: 8,
        all_vectors: true,
        ..relayguard_testkit::audit_config()
    });
    relayguard_scanner::audit::audit(
        pf.addr().into(),
        25,
        Some(pf.hostname()),
        config,
        Arc::new(Pacer::new(None)),
    )
    .await
}

/// The most sessions that were open at one time, from the transcript: a session is open from
/// its first line until its last (a session opened in the millisecond another ended follows it).
fn most_at_once(result: &HostResult) -> usize {
    let mut spans: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for line in &result.transcript.lines {
        let span = spans.entry(line.session).or_insert((line.ms, line.ms));
        span.0 = span.0.min(line.ms);
        span.1 = span.1.max(line.ms);
    }
    spans
        .values()
        .map(|&(start, _)| {
            spans
                .values()
                .filter(|&&(s, e)| s <= start && (start < e || s == start))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// In how many sessions the tests placed in the first session ran (every test but the relay
/// vectors).
fn own_sessions(result: &HostResult) -> usize {
    let sessions: std::collections::BTreeSet<u32> = result
        .tests
        .iter()
        .filter(|t| t.kind != TestKind::Relay && t.verdict != Verdict::NotRun)
        .map(|t| t.session)
        .collect();
    sessions.len()
}

/// The relay tests and their verdicts, by vector and envelope with the host's own name and
/// address written as `HOST` and `IP` (a vector naming the host runs once per name learned);
/// each must appear exactly once.
fn relay_verdicts(result: &HostResult, pf: &Postfix) -> BTreeMap<(String, String), Verdict> {
    let own = |s: &str| {
        s.replace(pf.hostname(), "HOST")
            .replace(&pf.addr().to_string(), "IP")
    };
    let mut verdicts = BTreeMap::new();
    for t in result.tests.iter().filter(|t| t.kind == TestKind::Relay) {
        let envelope = format!("{} -> {}", t.mail_from.as_deref().unwrap_or(""), t.argument);
        let before = verdicts.insert((t.id.clone(), own(&envelope)), t.verdict);
        assert!(
            before.is_none(),
            "relay test {} {envelope} reported twice",
            t.id
        );
    }
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_relay_gets_more_sessions_and_a_quick_server_keeps_its_own() {
    let slow = Postfix::start(Personality::SlowOpenRelay);
    let quick_relay = Postfix::start(Personality::OpenRelay);
    let quick = Postfix::start(Personality::Closed);
    let (slow_result, quick_relay_result, quick_result) =
        tokio::join!(audit(&slow), audit(&quick_relay), audit(&quick));

    // The slow relay: the same verdicts as a relay answering at once, the host an open relay.
    let verdicts = relay_verdicts(&slow_result, &slow);
    assert!(verdicts.len() >= 20, "{verdicts:?}");
    assert_eq!(verdicts, relay_verdicts(&quick_relay_result, &quick_relay));
    assert!(
        slow_result
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::OpenRelay),
        "{:?}",
        slow_result.findings
    );
    // The tests fill four sessions at 8 a session; the slow answers opened more, never more
    // than the limit.
    let filled = (verdicts.len() + 4).div_ceil(8);
    let slow_at_once = most_at_once(&slow_result);
    assert!(
        slow_at_once > filled && slow_at_once <= SESSIONS,
        "{slow_at_once} sessions at once, {filled} filled by the tests"
    );
    // The first session's own tests (VRFY, EXPN, backscatter, the local control) were shared
    // out on the slow relay, and stayed together on the quick one.
    assert!(own_sessions(&slow_result) > 1, "{:#?}", slow_result.tests);
    assert_eq!(
        own_sessions(&quick_relay_result),
        1,
        "{:#?}",
        quick_relay_result.tests
    );
    // The quick relay kept to the sessions its tests fill.
    let quick_relay_at_once = most_at_once(&quick_relay_result);
    assert!(
        quick_relay_at_once <= filled,
        "{quick_relay_at_once} sessions at once, {filled} filled by the tests"
    );

    // The quick closed server: nothing accepted for relay, no more sessions than its tests fill.
    let verdicts = relay_verdicts(&quick_result, &quick);
    assert!(verdicts.len() >= 20, "{verdicts:?}");
    assert!(
        !verdicts.values().any(|&v| v == Verdict::Accepted),
        "{verdicts:?}"
    );
    let quick_at_once = most_at_once(&quick_result);
    let filled = (verdicts.len() + 4).div_ceil(8);
    assert!(
        quick_at_once <= filled,
        "{quick_at_once} sessions at once, {filled} filled by the tests"
    );
}
