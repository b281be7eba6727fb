//! The lifecycle rules, without a database.

use relayguard_core::agent_report::{
    CheckResult, HostIdentity, LiveFacts, Mechanism, Mta, MtaFact as Fact, SCHEMA_VERSION,
};
use relayguard_core::scan::SmtpInfo;
use relayguard_core::{Evidence, Finding, SweepMeta};
use time::macros::date;

use super::*;

const TODAY: Date = date!(2026 - 12 - 02);

fn host(address: &str, role: Role) -> Host {
    Host {
        address: address.into(),
        hostname: "pc.campus.test".into(),
        role,
        admin_name: "Admin".into(),
        admin_email: "admin@campus.test".into(),
        note: String::new(),
        registered_on: "2026-11-01".into(),
        reviewed_on: "2026-11-01".into(),
        review_months: 6,
        status: HostStatus::Active,
        admin_lang: None,
    }
}

fn snapshot(hosts: Vec<Host>, open: &[(&str, i64, FindingKind, FindingSource)]) -> Snapshot {
    Snapshot {
        hosts,
        missed_sweeps: HashMap::new(),
        open: open
            .iter()
            .map(|(a, p, k, s)| OpenFinding {
                key: key(a, *p, *k),
                source: *s,
                vantages: vec![],
            })
            .collect(),
        today: TODAY,
        rules: Arc::new(RuleSet::builtin().unwrap()),
        sweep: Some(7),
        vantage: Some("t".into()),
        vantages: Vantages::default(),
    }
}

fn key(address: &str, port: i64, kind: FindingKind) -> FindingKey {
    FindingKey {
        address: address.into(),
        port,
        kind,
    }
}

fn listener(address: &str) -> HostResult {
    let mut r = HostResult::unreachable(address.parse().unwrap(), 25, PortState::Open);
    r.smtp = Some(SmtpInfo {
        banner: "220 mx ESMTP".into(),
        mta: "postfix".into(),
        ..Default::default()
    });
    r
}

/// A report of sendmail enabled at boot, or of nothing.
fn test_report(enabled: bool) -> AgentReport {
    AgentReport {
        schema_version: SCHEMA_VERSION,
        agent_version: "0.1.0".into(),
        generated_at: 1_700_000_000,
        host: HostIdentity {
            hostname: "lab-pc".into(),
            machine_id: None,
            os: None,
        },
        check: CheckResult {
            root: "/".into(),
            live: LiveFacts::Checked,
            findings: if enabled {
                vec![Fact {
                    mta: Mta::Sendmail,
                    fact: FactKind::EnabledAtBoot,
                    mechanism: Some(Mechanism::Sysv),
                    evidence: "/etc/rc2.d/S80sendmail".into(),
                    detail: String::new(),
                }]
            } else {
                vec![]
            },
            warnings: vec![],
        },
        actions: vec![],
        reappeared: vec![],
        queue: None,
    }
}

fn coverage(targets: &[&str], results: &[HostResult]) -> Coverage {
    let meta = SweepMeta {
        vantage: "t".into(),
        targets: targets
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        ports: vec![25],
        started_at: 1,
        finished_at: 2,
    };
    Coverage::new(&meta, results)
}

fn opened(c: &Changes) -> Vec<FindingKey> {
    c.open.iter().map(|f| f.key.clone()).collect()
}

#[test]
fn an_unregistered_listener_opens_a_finding_naming_the_sweep() {
    let results = [listener("10.0.0.5")];
    let s = snapshot(vec![], &[]);
    let c = reconcile(&s, &results, &coverage(&["10.0.0.0/24"], &results));
    assert_eq!(
        opened(&c),
        [key("10.0.0.5", 25, FindingKind::UnregisteredMta)]
    );
    let f = &c.open[0];
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.sweep, Some(7));
    assert_eq!(json_of(&f.evidence)["sweep"], 7);
    assert_eq!(json_of(&f.evidence)["banner"], "220 mx ESMTP");
    assert!(c.resolve.is_empty());
}

#[test]
fn severity_overrides_apply_to_the_kinds_the_registry_derives() {
    let mut rules = RuleSet::builtin().unwrap();
    for kind in [
        FindingKind::UnregisteredMta,
        FindingKind::NonMailHostListening,
        FindingKind::RegistrationStale,
        FindingKind::RegistrationExpired,
        FindingKind::MtaEnabledOnNonMailHost,
    ] {
        rules.severities.insert(kind, Severity::Critical);
    }
    let mut overdue = host("10.0.0.3", Role::MailDirect);
    overdue.reviewed_on = "2020-01-01".into();
    let mut s = snapshot(
        vec![
            host("10.0.0.1", Role::NonMail),
            host("10.0.0.2", Role::MailDirect),
            overdue,
        ],
        &[],
    );
    s.rules = Arc::new(rules);
    s.missed_sweeps.insert("10.0.0.2".into(), 1);
    let results = [listener("10.0.0.1"), listener("10.0.0.9")];
    let c = reconcile(&s, &results, &coverage(&["10.0.0.0/24"], &results));
    let kinds: BTreeSet<FindingKind> = c.open.iter().map(|f| f.key.kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            FindingKind::UnregisteredMta,
            FindingKind::NonMailHostListening,
            FindingKind::RegistrationStale,
            FindingKind::RegistrationExpired,
        ])
    );
    assert!(
        c.open.iter().all(|f| f.severity == Severity::Critical),
        "{:#?}",
        c.open
    );
    let c = agent_report(&s, "10.0.0.1", &test_report(true));
    assert_eq!(c.open[0].severity, Severity::Critical);
}

#[test]
fn scanner_findings_keep_their_severity_and_duplicates_collapse() {
    let mut r = listener("10.0.0.5");
    let relay = Finding {
        kind: FindingKind::OpenRelay,
        severity: Severity::High,
        summary: "first".into(),
        evidence: Evidence::default(),
    };
    r.findings = vec![
        relay.clone(),
        Finding {
            summary: "second".into(),
            ..relay
        },
    ];
    let s = snapshot(vec![host("10.0.0.5", Role::MailDirect)], &[]);
    let results = [r];
    let c = reconcile(&s, &results, &coverage(&["10.0.0.5"], &results));
    assert_eq!(opened(&c), [key("10.0.0.5", 25, FindingKind::OpenRelay)]);
    assert_eq!(c.open[0].summary, "first");
    assert_eq!(c.open[0].severity, Severity::High);
    assert_eq!(c.counters, [Counter::Listening("10.0.0.5".into())]);
}

#[test]
fn only_a_sweep_that_covered_the_port_resolves() {
    let open = [
        ("10.0.0.5", 25, FindingKind::OpenRelay, FindingSource::Sweep),
        (
            "10.0.1.5",
            25,
            FindingKind::UnregisteredMta,
            FindingSource::Sweep,
        ),
        (
            "10.0.0.6",
            587,
            FindingKind::NoStarttls,
            FindingSource::Sweep,
        ),
    ];
    let s = snapshot(vec![], &open);
    let c = reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[]));
    assert_eq!(c.resolve, [key("10.0.0.5", 25, FindingKind::OpenRelay)]);
    assert!(c.open.is_empty());
    // Seen again: refreshed, not resolved.
    let mut r = listener("10.0.0.5");
    r.findings = vec![Finding {
        kind: FindingKind::OpenRelay,
        severity: Severity::Critical,
        summary: "relay".into(),
        evidence: Evidence::default(),
    }];
    let results = [r];
    let c = reconcile(&s, &results, &coverage(&["10.0.0.0/24"], &results));
    assert!(c.resolve.is_empty(), "{:?}", c.resolve);
}

#[test]
fn a_silent_mail_server_goes_stale_after_two_covering_sweeps() {
    let mut s = snapshot(vec![host("10.0.0.9", Role::MailDirect)], &[]);
    let c = reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[]));
    assert_eq!(
        c.counters,
        [Counter::Missed {
            address: "10.0.0.9".into(),
            misses: 1
        }]
    );
    assert!(c.open.is_empty());
    // A sweep of another block counts for nothing.
    let c = reconcile(&s, &[], &coverage(&["10.0.5.0/24"], &[]));
    assert_eq!(c, Changes::default());

    s.missed_sweeps.insert("10.0.0.9".into(), 1);
    let c = reconcile(&s, &[], &coverage(&["10.0.0.9"], &[]));
    assert_eq!(
        opened(&c),
        [key("10.0.0.9", SMTP_PORT, FindingKind::RegistrationStale)]
    );
    assert_eq!(c.open[0].source, FindingSource::Registry);
    assert_eq!(json_of(&c.open[0].evidence)["missed_sweeps"], 2);

    // Answering again resets the counter and resolves the finding.
    s.open.push(OpenFinding {
        key: key("10.0.0.9", SMTP_PORT, FindingKind::RegistrationStale),
        source: FindingSource::Registry,
        vantages: vec![],
    });
    let results = [listener("10.0.0.9")];
    let c = reconcile(&s, &results, &coverage(&["10.0.0.0/16"], &results));
    assert_eq!(c.counters, [Counter::Listening("10.0.0.9".into())]);
    assert_eq!(
        c.resolve,
        [key("10.0.0.9", SMTP_PORT, FindingKind::RegistrationStale)]
    );
    assert!(c.open.is_empty());
}

#[test]
fn overdue_reviews_open_and_reviews_resolve() {
    let mut h = host("192.0.2.1", Role::MailDirect);
    h.reviewed_on = "2026-01-01".into();
    let s = snapshot(vec![h.clone()], &[]);
    let c = registrations(&s);
    assert_eq!(
        opened(&c),
        [key("192.0.2.1", 0, FindingKind::RegistrationExpired)]
    );
    assert_eq!(json_of(&c.open[0].evidence)["due"], "2026-07-01");
    assert_eq!(c.open[0].sweep, None);

    h.reviewed_on = "2026-12-01".into();
    let open = [(
        "192.0.2.1",
        0,
        FindingKind::RegistrationExpired,
        FindingSource::Registry,
    )];
    let c = registrations(&snapshot(vec![h.clone()], &open));
    assert_eq!(
        c.resolve,
        [key("192.0.2.1", 0, FindingKind::RegistrationExpired)]
    );
    // A removed registration takes its registry findings with it.
    let c = registrations(&snapshot(vec![], &open));
    assert_eq!(
        c.resolve,
        [key("192.0.2.1", 0, FindingKind::RegistrationExpired)]
    );
}

#[test]
fn staleness_ends_with_the_mail_role() {
    let open = [(
        "10.0.0.9",
        SMTP_PORT,
        FindingKind::RegistrationStale,
        FindingSource::Registry,
    )];
    let c = registrations(&snapshot(vec![host("10.0.0.9", Role::NonMail)], &open));
    assert_eq!(
        c.resolve,
        [key("10.0.0.9", SMTP_PORT, FindingKind::RegistrationStale)]
    );
    let c = registrations(&snapshot(vec![host("10.0.0.9", Role::MailDirect)], &open));
    assert!(c.resolve.is_empty());
}

#[test]
fn agent_reports_open_only_on_non_mail_hosts_and_resolve_when_clean() {
    let s = snapshot(
        vec![
            host("10.0.0.1", Role::NonMail),
            host("10.0.0.2", Role::MailDirect),
        ],
        &[(
            "10.0.0.1",
            0,
            FindingKind::MtaEnabledOnNonMailHost,
            FindingSource::Agent,
        )],
    );
    let c = agent_report(&s, "10.0.0.1", &test_report(true));
    assert_eq!(
        opened(&c),
        [key("10.0.0.1", 0, FindingKind::MtaEnabledOnNonMailHost)]
    );
    assert_eq!(c.open[0].severity, Severity::Medium);
    assert!(c.open[0].summary.contains("enabled at boot"));
    assert!(agent_report(&s, "10.0.0.2", &test_report(true)) == Changes::default());
    let c = agent_report(&s, "10.0.0.1", &test_report(false));
    assert_eq!(
        c.resolve,
        [key("10.0.0.1", 0, FindingKind::MtaEnabledOnNonMailHost)]
    );
}

/// A clean report whose journal says postfix came back `age` seconds before it was made.
fn reappeared_report(age: u64) -> AgentReport {
    let mut r = test_report(false);
    r.reappeared = vec![relayguard_core::agent_report::Reappearance {
        mta: Mta::Postfix,
        at: r.generated_at - age,
        evidence: vec!["/etc/systemd/system/multi-user.target.wants/postfix.service".into()],
        previously_hardened: true,
        package: Some(relayguard_core::agent_report::PackageVersion {
            name: "postfix".into(),
            version: "3.7.11-0+deb12u1".into(),
        }),
        hardened_version: Some("3.7.10-0+deb12u1".into()),
    }];
    r
}

#[test]
fn a_reappeared_mta_opens_on_non_mail_hosts_for_a_week() {
    let s = snapshot(
        vec![
            host("10.0.0.1", Role::NonMail),
            host("10.0.0.2", Role::MailDirect),
        ],
        &[],
    );
    let c = agent_report(&s, "10.0.0.1", &reappeared_report(3600));
    // The MTA is off again, so only the reappearance is open.
    assert_eq!(opened(&c), [key("10.0.0.1", 0, FindingKind::MtaReappeared)]);
    assert_eq!(c.open[0].severity, Severity::Medium);
    assert!(
        c.open[0].summary.contains(
            "postfix enabled again (package postfix 3.7.11-0+deb12u1, was 3.7.10-0+deb12u1)"
        ),
        "{}",
        c.open[0].summary
    );
    assert!(agent_report(&s, "10.0.0.2", &reappeared_report(3600)) == Changes::default());
    // Older than the window: nothing new to say.
    let old = reappeared_report(REAPPEARED_WINDOW_SECS + 1);
    assert!(opened(&agent_report(&s, "10.0.0.1", &old)).is_empty());
    let s = snapshot(
        vec![host("10.0.0.1", Role::NonMail)],
        &[(
            "10.0.0.1",
            0,
            FindingKind::MtaReappeared,
            FindingSource::Agent,
        )],
    );
    assert_eq!(
        agent_report(&s, "10.0.0.1", &old).resolve,
        [key("10.0.0.1", 0, FindingKind::MtaReappeared)]
    );
    assert_eq!(
        agent_report(&s, "10.0.0.1", &test_report(false)).resolve,
        [key("10.0.0.1", 0, FindingKind::MtaReappeared)]
    );
}

/// A clean report with Postfix queue health.
fn queue_report(messages: u64, null_sender: u64) -> AgentReport {
    let mut r = test_report(false);
    r.queue = Some(relayguard_core::agent_report::QueueHealth {
        mta: Mta::Postfix,
        source: "postqueue -j".into(),
        queues: [("deferred".to_string(), messages)].into_iter().collect(),
        messages,
        null_sender,
        oldest_age_secs: Some(5400),
        bounces_since_last: None,
    });
    r
}

#[test]
fn queue_health_opens_on_mail_servers_and_resolves_under_the_thresholds() {
    let s = snapshot(
        vec![
            host("10.0.0.1", Role::MailDirect),
            host("10.0.0.2", Role::NonMail),
        ],
        &[],
    );
    let c = agent_report(
        &s,
        "10.0.0.1",
        &queue_report(QUEUE_BACKLOG_MESSAGES, BOUNCE_BURST_MESSAGES),
    );
    assert_eq!(
        opened(&c),
        [
            key("10.0.0.1", 0, FindingKind::MailQueueBacklog),
            key("10.0.0.1", 0, FindingKind::BounceBurst)
        ]
    );
    assert!(
        c.open[0]
            .summary
            .contains("500 messages queued (threshold 500; deferred 500; oldest 1h 30m)"),
        "{}",
        c.open[0].summary
    );
    // Just under: nothing; a non-mail host's queue is not judged here.
    let under = queue_report(QUEUE_BACKLOG_MESSAGES - 1, BOUNCE_BURST_MESSAGES - 1);
    assert!(opened(&agent_report(&s, "10.0.0.1", &under)).is_empty());
    assert!(opened(&agent_report(&s, "10.0.0.2", &queue_report(9999, 9999))).is_empty());
    let s = snapshot(
        vec![host("10.0.0.1", Role::MailDirect)],
        &[
            (
                "10.0.0.1",
                0,
                FindingKind::MailQueueBacklog,
                FindingSource::Agent,
            ),
            (
                "10.0.0.1",
                0,
                FindingKind::BounceBurst,
                FindingSource::Agent,
            ),
        ],
    );
    assert_eq!(agent_report(&s, "10.0.0.1", &under).resolve.len(), 2);
    // Bounces counted in the log since the previous report open it too.
    let mut burst = queue_report(3, 0);
    burst.queue.as_mut().unwrap().bounces_since_last = Some(BOUNCE_BURST_MESSAGES);
    let c = agent_report(&s, "10.0.0.1", &burst);
    assert_eq!(opened(&c), [key("10.0.0.1", 0, FindingKind::BounceBurst)]);
    assert!(
        c.open[0]
            .summary
            .contains("bounces generated since the previous report")
    );
    // A report without queue health judges nothing.
    assert!(
        agent_report(&s, "10.0.0.1", &test_report(false))
            .resolve
            .is_empty()
    );
}

fn test(
    id: &str,
    kind: TestKind,
    verdict: Verdict,
    reply: &str,
) -> relayguard_core::scan::TestResult {
    relayguard_core::scan::TestResult {
        id: id.into(),
        kind,
        mail_from: None,
        argument: "<x@example.com>".into(),
        verdict,
        reply: reply.into(),
        note: None,
        session: 1,
    }
}

const GREYLISTED: &str = "451 4.7.1 Greylisted, try again later";

/// An open relay and backscatter source on record, and a sweep that covers it again.
fn relay_on_record() -> Snapshot {
    snapshot(
        vec![host("192.0.2.1", Role::MailDirect)],
        &[
            (
                "192.0.2.1",
                25,
                FindingKind::OpenRelay,
                FindingSource::Sweep,
            ),
            (
                "192.0.2.1",
                25,
                FindingKind::BackscatterSource,
                FindingSource::Sweep,
            ),
            (
                "192.0.2.1",
                25,
                FindingKind::NoStarttls,
                FindingSource::Sweep,
            ),
        ],
    )
}

fn swept(tests: Vec<relayguard_core::scan::TestResult>) -> HostResult {
    let mut r = listener("192.0.2.1");
    r.tests = tests;
    r
}

#[test]
fn a_greylisting_sweep_resolves_nothing_it_could_not_judge_and_says_why() {
    let s = relay_on_record();
    let results = [swept(vec![
        test("v1", TestKind::Relay, Verdict::Inconclusive, GREYLISTED),
        test("v2", TestKind::Relay, Verdict::Inconclusive, GREYLISTED),
        test(
            "backscatter",
            TestKind::Backscatter,
            Verdict::Inconclusive,
            GREYLISTED,
        ),
    ])];
    let c = reconcile(&s, &results, &coverage(&["192.0.2.0/24"], &results));
    // Findings not decided by a test follow the old rule: covered and not seen, so gone.
    assert_eq!(c.resolve, [key("192.0.2.1", 25, FindingKind::NoStarttls)]);
    // Neither refreshed (last-seen stays) nor resolved.
    assert!(c.open.is_empty(), "{:?}", c.open);
    let notes: Vec<String> = c.held.iter().map(Held::note).collect();
    assert_eq!(
        notes,
        [
            "open-relay on 192.0.2.1 port 25 stays open: 2 of 2 relay tests got no definite answer \
             (first: v1 inconclusive: 451 4.7.1 Greylisted, try again later)",
            "backscatter-source on 192.0.2.1 port 25 stays open: 1 of 1 unknown-recipient tests got \
             no definite answer (first: backscatter inconclusive: 451 4.7.1 Greylisted, try again later)",
        ]
    );
}

#[test]
fn definite_answers_resolve_each_kind_on_its_own() {
    let s = relay_on_record();
    // Every relay vector refused or asking for AUTH: the relay is judged closed. The unknown
    // recipient was greylisted: backscatter is not judged.
    let results = [swept(vec![
        test(
            "v1",
            TestKind::Relay,
            Verdict::Refused,
            "554 5.7.1 Relay access denied",
        ),
        test(
            "v2",
            TestKind::Relay,
            Verdict::AuthRequired,
            "530 5.7.0 Authentication required",
        ),
        test(
            "backscatter",
            TestKind::Backscatter,
            Verdict::Inconclusive,
            GREYLISTED,
        ),
    ])];
    let c = reconcile(&s, &results, &coverage(&["192.0.2.1"], &results));
    assert_eq!(
        BTreeSet::from_iter(c.resolve.clone()),
        BTreeSet::from([
            key("192.0.2.1", 25, FindingKind::OpenRelay),
            key("192.0.2.1", 25, FindingKind::NoStarttls),
        ])
    );
    assert_eq!(c.held.len(), 1);
    assert_eq!(c.held[0].key.kind, FindingKind::BackscatterSource);

    // One vector still undecided keeps the relay open, whatever the others said.
    let results = [swept(vec![
        test(
            "v1",
            TestKind::Relay,
            Verdict::Refused,
            "554 5.7.1 Relay access denied",
        ),
        test(
            "v2",
            TestKind::Relay,
            Verdict::Inconclusive,
            "421 4.3.2 Try later",
        ),
        test(
            "backscatter",
            TestKind::Backscatter,
            Verdict::Refused,
            "550 5.1.1 User unknown",
        ),
    ])];
    let c = reconcile(&s, &results, &coverage(&["192.0.2.1"], &results));
    assert!(
        c.resolve
            .contains(&key("192.0.2.1", 25, FindingKind::BackscatterSource))
    );
    assert_eq!(c.held.len(), 1);
    assert_eq!(c.held[0].key.kind, FindingKind::OpenRelay);
    assert!(
        c.held[0].reason.starts_with("1 of 2 relay tests"),
        "{}",
        c.held[0].reason
    );
}

#[test]
fn a_port_that_no_longer_answers_resolves_everything() {
    let s = relay_on_record();
    let closed = [HostResult::unreachable(
        "192.0.2.1".parse().unwrap(),
        25,
        PortState::Closed,
    )];
    for results in [&closed[..], &[]] {
        let c = reconcile(&s, results, &coverage(&["192.0.2.0/24"], results));
        assert_eq!(c.resolve.len(), 3, "{:?}", c.resolve);
        assert!(c.held.is_empty());
    }
}

#[test]
fn a_session_that_ran_no_test_judges_nothing() {
    let s = relay_on_record();
    let mut r = HostResult::unreachable("192.0.2.1".parse().unwrap(), 25, PortState::Open);
    r.error = Some("host deadline\r\nreached".into());
    let results = [r];
    let c = reconcile(&s, &results, &coverage(&["192.0.2.1"], &results));
    assert_eq!(c.resolve, [key("192.0.2.1", 25, FindingKind::NoStarttls)]);
    assert_eq!(
        c.held.iter().map(|h| h.reason.as_str()).collect::<Vec<_>>(),
        [
            "no relay test ran (host deadline\\r\\nreached)",
            "no unknown-recipient test ran (host deadline\\r\\nreached)"
        ]
    );
}

mod vantage;

/// A finding's evidence text, parsed.
fn json_of(evidence: &str) -> serde_json::Value {
    serde_json::from_str(evidence).expect("evidence is JSON")
}
