//! Store and reconciliation, run against real SQLite and real PostgreSQL.

mod common;

use std::net::IpAddr;

use common::Kind;
use relayguard_core::agent_report::{
    AgentReport, CheckResult, FactKind, HostIdentity, LiveFacts, Mechanism, Mta, MtaFact as Fact,
    SCHEMA_VERSION,
};
use relayguard_core::scan::{HostResult, PortState, SmtpInfo, TestKind, TestResult, Verdict};
use relayguard_core::{Evidence, Finding, FindingKind, RelayStrength, Severity};
use relayguard_registry::model::{HostInput, HostUpdate, Network, format_date, today};
use relayguard_registry::store::{FindingFilter, FindingStatus, ReportOutcome};
use relayguard_registry::{Error, Store, SweepMeta, csv_io, record_sweep};

/// Runs each async test body once per backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    hosts_crud_and_conflicts,
    networks_and_longest_prefix,
    csv_import_is_all_or_nothing,
    unregistered_listener_opens_and_covering_sweep_resolves,
    non_mail_host_listening_and_scanner_findings,
    stale_after_two_covering_sweeps,
    expired_review_opens_and_review_resolves,
    findings_filters,
    agent_tokens_and_idempotent_reports,
    reopen_after_resolution,
    severity_overrides_apply_in_the_registry,
    a_sweep_that_could_not_judge_leaves_the_relay_open,
    results_streamed_in_are_recorded_whole_or_not_at_all,
);

fn input(addr: &str, role: &str, email: &str) -> HostInput {
    HostInput {
        address: addr.into(),
        hostname: format!("h{}.example.ac.jp", addr.replace([':', '.'], "-")),
        role: role.into(),
        admin_name: "Admin".into(),
        admin_email: email.into(),
        ..Default::default()
    }
}

async fn add(store: &Store, addr: &str, role: &str) {
    store
        .add_host(
            &input(addr, role, "admin@example.ac.jp")
                .validate(today())
                .unwrap(),
        )
        .await
        .unwrap();
}

fn listener(addr: &str) -> HostResult {
    let mut r = HostResult::unreachable(addr.parse().unwrap(), 25, PortState::Open);
    r.smtp = Some(SmtpInfo {
        banner: "220 <b>evil</b> ESMTP".into(),
        mta: "postfix".into(),
        ..Default::default()
    });
    r
}

fn meta(targets: &[&str]) -> SweepMeta {
    SweepMeta {
        vantage: "test".into(),
        targets: targets
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        ports: vec![25],
        started_at: 1_700_000_000,
        finished_at: 1_700_000_100,
    }
}

async fn open_keys(store: &Store) -> Vec<(String, i64, String)> {
    let f = FindingFilter {
        status: Some(FindingStatus::Open),
        ..Default::default()
    };
    let mut v: Vec<_> = store
        .list_findings(&f)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.address, f.port, f.kind))
        .collect();
    v.sort();
    v
}

fn key(a: &str, p: i64, k: &str) -> (String, i64, String) {
    (a.into(), p, k.into())
}

async fn hosts_crud_and_conflicts(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    add(s, "192.0.2.10", "mail-direct").await;
    add(s, "2001:db8::25", "non-mail").await;
    let dup = s
        .add_host(
            &input("192.0.2.10", "non-mail", "x@example.ac.jp")
                .validate(today())
                .unwrap(),
        )
        .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    // IPv6 in another spelling is the same key.
    let h = s.get_host("2001:DB8:0::25").await.unwrap().unwrap();
    assert_eq!(h.role.as_str(), "non-mail");
    assert_eq!(h.review_months, 6);
    assert_eq!(h.registered_on, format_date(today()));
    let upd = HostUpdate {
        role: Some("mail-via-gateway".into()),
        note: Some("moved".into()),
        ..Default::default()
    };
    let h = s.update_host("2001:db8::25", &upd).await.unwrap();
    assert_eq!(h.role.as_str(), "mail-via-gateway");
    assert_eq!(
        s.get_host("2001:db8::25").await.unwrap().unwrap().note,
        "moved"
    );
    let bad = HostUpdate {
        admin_email: Some("nope".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.update_host("2001:db8::25", &bad).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        s.update_host("192.0.2.99", &upd).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.get_host("not-an-ip").await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(s.list_hosts().await.unwrap().len(), 2);
    assert!(s.remove_host("192.0.2.10").await.unwrap());
    assert!(!s.remove_host("192.0.2.10").await.unwrap());
    assert_eq!(s.list_hosts().await.unwrap().len(), 1);
    // Reopening the same database sees the same data and does not re-run migrations.
    drop(t.store.clone());
    let again = Store::open(&t.url).await.unwrap();
    assert_eq!(again.list_hosts().await.unwrap().len(), 1);
}

async fn networks_and_longest_prefix(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    let net = |c: &str, e: &str| Network {
        owner_lang: None,
        cidr: c.into(),
        owner_name: "Owner".into(),
        owner_email: e.into(),
        note: String::new(),
    };
    s.add_network(&net("10.0.0.0/8", "big@example.ac.jp").validate().unwrap())
        .await
        .unwrap();
    s.add_network(&net("10.1.2.3/16", "lab@example.ac.jp").validate().unwrap())
        .await
        .unwrap();
    assert!(matches!(
        s.add_network(&net("10.1.0.0/16", "x@example.ac.jp").validate().unwrap())
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(net("10.0.0.0/33", "a@b.example").validate().is_err());
    let ip: IpAddr = "10.1.9.9".parse().unwrap();
    assert_eq!(
        s.network_for(ip).await.unwrap().unwrap().owner_email,
        "lab@example.ac.jp"
    );
    assert_eq!(
        s.network_for("10.2.0.1".parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .cidr,
        "10.0.0.0/8"
    );
    assert!(
        s.network_for("192.0.2.1".parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.remove_network("10.1.0.0/16").await.unwrap());
    assert_eq!(s.list_networks().await.unwrap().len(), 1);
}

async fn csv_import_is_all_or_nothing(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    let good = "address,hostname,role,admin_name,admin_email,note,registered_on,reviewed_on,review_months,status\n\
                192.0.2.1,mx1.example.ac.jp,mail-direct,Tanaka,tanaka@example.ac.jp,\"main, MX\",2026-01-10,2026-05-01,12,active\n\
                192.0.2.2,lab.example.ac.jp,non-mail,Sato,sato@example.ac.jp,,,,,\n";
    assert_eq!(csv_io::import_hosts(s, good.as_bytes()).await.unwrap(), 2);
    let bad = "address,hostname,role,admin_name,admin_email\n192.0.2.3,a.example.ac.jp,mail-direct,A,a@example.ac.jp\n192.0.2.4,b,bogus,B,b@example.ac.jp\n";
    let e = csv_io::import_hosts(s, bad.as_bytes()).await.unwrap_err();
    assert!(e.to_string().contains("line 3: invalid role"), "{e}");
    let dup = "address,hostname,role,admin_name,admin_email\n192.0.2.5,a.example.ac.jp,mail-direct,A,a@example.ac.jp\n192.0.2.1,b.example.ac.jp,non-mail,B,b@example.ac.jp\n";
    assert!(matches!(
        csv_io::import_hosts(s, dup.as_bytes()).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        s.list_hosts().await.unwrap().len(),
        2,
        "failed imports must add nothing"
    );
    // Export round-trips into an empty store.
    let csv = csv_io::hosts_to_csv(&s.list_hosts().await.unwrap()).unwrap();
    assert!(csv.contains("\"main, MX\""));
    let parsed = csv_io::parse_hosts_csv(csv.as_bytes()).unwrap();
    assert_eq!(parsed, s.list_hosts().await.unwrap());
}

async fn unregistered_listener_opens_and_covering_sweep_resolves(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    let sw = record_sweep(s, &meta(&["10.0.0.0/24"]), &[listener("10.0.0.5")])
        .await
        .unwrap();
    assert_eq!(
        (sw.results, sw.smtp_listeners, sw.findings_opened),
        (1, 1, 1)
    );
    assert_eq!(
        open_keys(s).await,
        vec![key("10.0.0.5", 25, "unregistered-mta")]
    );
    // A sweep of another block says nothing about 10.0.0.5.
    record_sweep(s, &meta(&["10.0.1.0/24"]), &[]).await.unwrap();
    assert_eq!(open_keys(s).await.len(), 1);
    // A sweep of port 587 only does not cover port 25 either.
    let mut m = meta(&["10.0.0.0/24"]);
    m.ports = vec![587];
    record_sweep(s, &m, &[]).await.unwrap();
    assert_eq!(open_keys(s).await.len(), 1);
    // A covering sweep that no longer sees it resolves it.
    let sw = record_sweep(
        s,
        &meta(&["10.0.0.0-10.0.0.9"]),
        &[HostResult::unreachable(
            "10.0.0.5".parse().unwrap(),
            25,
            PortState::Closed,
        )],
    )
    .await
    .unwrap();
    assert_eq!(sw.findings_resolved, 1);
    assert!(open_keys(s).await.is_empty());
    let all = s.list_findings(&FindingFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, FindingStatus::Resolved);
    assert!(all[0].resolved_at.is_some());
    assert_eq!(s.list_sweeps().await.unwrap().len(), 4);
    // Registering it as a mail server makes the listener legitimate.
    add(s, "10.0.0.5", "mail-via-gateway").await;
    record_sweep(s, &meta(&["10.0.0.0/24"]), &[listener("10.0.0.5")])
        .await
        .unwrap();
    assert!(open_keys(s).await.is_empty());
    let obs = s.observations_for("10.0.0.5", 10).await.unwrap();
    assert_eq!(obs.len(), 3, "open, closed, open again");
    // A filtered port is coverage, not an observation: counted in the sweep, no row kept.
    let sw = record_sweep(
        s,
        &meta(&["10.0.0.0/24"]),
        &[
            listener("10.0.0.5"),
            HostResult::unreachable("10.0.0.6".parse().unwrap(), 25, PortState::Filtered),
        ],
    )
    .await
    .unwrap();
    assert_eq!(sw.results, 2);
    assert!(s.observations_for("10.0.0.6", 10).await.unwrap().is_empty());
    assert_eq!(s.observations_for("10.0.0.5", 10).await.unwrap().len(), 4);
}

async fn non_mail_host_listening_and_scanner_findings(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    add(s, "10.0.0.7", "non-mail").await;
    add(s, "10.0.0.8", "mail-direct").await;
    let mut relay = listener("10.0.0.8");
    relay.source = Some("198.19.0.1".parse().unwrap());
    relay.findings.push(Finding {
        kind: FindingKind::OpenRelay,
        severity: Severity::Critical,
        summary: "relays".into(),
        evidence: Evidence {
            tests: vec!["v1".into()],
            relay_strength: Some(RelayStrength::External),
            ..Evidence::default()
        },
    });
    // The same kind twice in one result is one finding.
    relay.findings.push(relay.findings[0].clone());
    let relay_findings = relay.findings.clone();
    record_sweep(s, &meta(&["10.0.0.0/24"]), &[listener("10.0.0.7"), relay])
        .await
        .unwrap();
    assert_eq!(
        open_keys(s).await,
        vec![
            key("10.0.0.7", 25, "non-mail-host-listening"),
            key("10.0.0.8", 25, "open-relay")
        ]
    );
    let f = s
        .list_findings(&FindingFilter {
            min_severity: Some(Severity::High),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].evidence["tests"][0], "v1");
    assert_eq!(f[0].evidence["relay_strength"], "external");
    // The address it was tested from is kept per finding; a finding the sweep derived without one has none.
    assert_eq!(f[0].tested_from.as_deref(), Some("198.19.0.1"));
    let all = s.list_findings(&FindingFilter::default()).await.unwrap();
    let listening = all
        .iter()
        .find(|f| f.kind == "non-mail-host-listening")
        .unwrap();
    assert_eq!(listening.tested_from, None);
    // A later sweep from elsewhere records its own address.
    let mut again = listener("10.0.0.8");
    again.source = Some("10.9.9.9".parse().unwrap());
    again.findings = relay_findings.clone();
    record_sweep(s, &meta(&["10.0.0.8"]), &[again])
        .await
        .unwrap();
    let all = s.list_findings(&FindingFilter::default()).await.unwrap();
    let relay = all.iter().find(|f| f.kind == "open-relay").unwrap();
    assert_eq!(relay.tested_from.as_deref(), Some("10.9.9.9"));
}

async fn stale_after_two_covering_sweeps(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    add(s, "10.0.0.9", "mail-direct").await;
    add(s, "10.0.9.9", "mail-direct").await; // never covered: never stale
    record_sweep(s, &meta(&["10.0.0.0/24"]), &[]).await.unwrap();
    assert!(open_keys(s).await.is_empty(), "one miss is not stale yet");
    record_sweep(s, &meta(&["10.0.5.0/24"]), &[]).await.unwrap(); // not covering: does not count
    assert!(open_keys(s).await.is_empty());
    record_sweep(s, &meta(&["10.0.0.9"]), &[]).await.unwrap();
    assert_eq!(
        open_keys(s).await,
        vec![key("10.0.0.9", 25, "registration-stale")]
    );
    record_sweep(s, &meta(&["10.0.0.0/16"]), &[listener("10.0.0.9")])
        .await
        .unwrap();
    assert!(
        open_keys(s).await.is_empty(),
        "listening again resolves stale"
    );
}

async fn expired_review_opens_and_review_resolves(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    let mut i = input("10.0.0.20", "mail-direct", "a@example.ac.jp");
    i.registered_on = Some("2020-01-01".into());
    i.reviewed_on = Some("2020-01-01".into());
    s.add_host(&i.validate(today()).unwrap()).await.unwrap();
    record_sweep(s, &meta(&["192.0.2.0/24"]), &[])
        .await
        .unwrap();
    assert_eq!(
        open_keys(s).await,
        vec![key("10.0.0.20", 0, "registration-expired")]
    );
    s.update_host(
        "10.0.0.20",
        &HostUpdate {
            reviewed: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(open_keys(s).await.is_empty());
}

async fn findings_filters(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    s.add_host(
        &input("10.0.0.30", "non-mail", "Lab@Example.ac.jp")
            .validate(today())
            .unwrap(),
    )
    .await
    .unwrap();
    s.add_network(
        &Network {
            owner_lang: None,
            cidr: "10.0.0.0/24".into(),
            owner_name: "Net".into(),
            owner_email: "net@example.ac.jp".into(),
            note: String::new(),
        }
        .validate()
        .unwrap(),
    )
    .await
    .unwrap();
    record_sweep(
        s,
        &meta(&["10.0.0.0/24"]),
        &[listener("10.0.0.30"), listener("10.0.0.31")],
    )
    .await
    .unwrap();
    let by = |a: &str| FindingFilter {
        admin: Some(a.into()),
        ..Default::default()
    };
    let f = s.list_findings(&by("lab@example.ac.jp")).await.unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, "non-mail-host-listening");
    let f = s.list_findings(&by("net@example.ac.jp")).await.unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].address, "10.0.0.31");
    let f = s
        .list_findings(&FindingFilter {
            min_severity: Some(Severity::Critical),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(f.is_empty());
    let f = s
        .list_findings(&FindingFilter {
            status: Some(FindingStatus::Resolved),
            address: Some("10.0.0.30".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(f.is_empty());
}

fn report(enabled: bool) -> AgentReport {
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

async fn agent_tokens_and_idempotent_reports(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    add(s, "10.0.0.40", "non-mail").await;
    assert!(matches!(
        s.create_agent_token("10.0.0.41").await,
        Err(Error::NotFound(_))
    ));
    let tok = s.create_agent_token("10.0.0.40").await.unwrap();
    assert_eq!(
        s.agent_for_token(&tok).await.unwrap().as_deref(),
        Some("10.0.0.40")
    );
    assert_eq!(s.agent_for_token("rga_wrong").await.unwrap(), None);
    // Rotation invalidates the old token.
    let tok2 = s.create_agent_token("10.0.0.40").await.unwrap();
    assert_eq!(s.agent_for_token(&tok).await.unwrap(), None);
    assert!(s.agent_for_token(&tok2).await.unwrap().is_some());

    let r = report(true);
    let body = serde_json::to_string(&r).unwrap();
    assert_eq!(
        s.add_agent_report("10.0.0.40", "r1", &r, &body)
            .await
            .unwrap(),
        ReportOutcome::Stored
    );
    assert_eq!(
        s.add_agent_report("10.0.0.40", "r1", &r, &body)
            .await
            .unwrap(),
        ReportOutcome::Duplicate
    );
    let other = serde_json::to_string(&report(false)).unwrap();
    assert!(matches!(
        s.add_agent_report("10.0.0.40", "r1", &report(false), &other)
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        open_keys(s).await,
        vec![key("10.0.0.40", 0, "mta-enabled-on-non-mail-host")]
    );
    s.add_agent_report("10.0.0.40", "r2", &report(false), &other)
        .await
        .unwrap();
    assert!(open_keys(s).await.is_empty());
    let reports = s.agent_reports("10.0.0.40", 10).await.unwrap();
    assert_eq!(reports.len(), 2);
    // Removing the host removes its token and reports.
    s.remove_host("10.0.0.40").await.unwrap();
    assert_eq!(s.agent_for_token(&tok2).await.unwrap(), None);
}

async fn reopen_after_resolution(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    record_sweep(s, &meta(&["10.0.0.0/24"]), &[listener("10.0.0.50")])
        .await
        .unwrap();
    record_sweep(s, &meta(&["10.0.0.0/24"]), &[]).await.unwrap();
    let sw = record_sweep(s, &meta(&["10.0.0.0/24"]), &[listener("10.0.0.50")])
        .await
        .unwrap();
    assert_eq!(sw.findings_opened, 1);
    let f = s.list_findings(&FindingFilter::default()).await.unwrap();
    assert_eq!(f.len(), 1, "same key, same row");
    assert_eq!(f[0].status, FindingStatus::Open);
    assert!(f[0].resolved_at.is_none());
    assert!(f[0].first_seen <= f[0].last_seen);
    assert_eq!(f[0].last_sweep, Some(sw.id));
}

/// `rules/severities.yaml` overrides reach the kinds the registry derives itself, through the
/// rules the store was given (the CLI's `--rules DIR`), and the severity filter follows them.
async fn severity_overrides_apply_in_the_registry(kind: Kind) {
    let t = common::open(kind).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("severities.yaml"),
        "severities:\n  unregistered-mta: critical\n  non-mail-host-listening: high\n  mta-enabled-on-non-mail-host: critical\n",
    )
    .unwrap();
    let rules = relayguard_core::rules::RuleSet::load(Some(dir.path())).unwrap();
    let s = &t.store.clone().with_rules(std::sync::Arc::new(rules));
    add(s, "10.0.0.7", "non-mail").await;
    record_sweep(
        s,
        &meta(&["10.0.0.0/24"]),
        &[listener("10.0.0.5"), listener("10.0.0.7")],
    )
    .await
    .unwrap();
    s.add_agent_report("10.0.0.7", "r1", &report(true), "{}")
        .await
        .unwrap();
    let severities = |rows: Vec<relayguard_registry::store::FindingRow>| {
        let mut v: Vec<(String, Severity)> =
            rows.into_iter().map(|f| (f.kind, f.severity)).collect();
        v.sort();
        v
    };
    let all = s.list_findings(&FindingFilter::default()).await.unwrap();
    assert_eq!(
        severities(all),
        [
            (
                "mta-enabled-on-non-mail-host".to_string(),
                Severity::Critical
            ),
            ("non-mail-host-listening".to_string(), Severity::High),
            ("unregistered-mta".to_string(), Severity::Critical),
        ]
    );
    let critical = s
        .list_findings(&FindingFilter {
            min_severity: Some(Severity::Critical),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(critical.len(), 2);
}

fn relay_test(id: &str, kind: TestKind, verdict: Verdict, reply: &str) -> TestResult {
    TestResult {
        id: id.into(),
        kind,
        mail_from: Some("<relayguard-probe@example.com>".into()),
        argument: "<relayguard-test@example.com>".into(),
        verdict,
        reply: reply.into(),
        note: None,
        session: 1,
    }
}

/// A recorded open relay swept again while the server greylists every RCPT: neither it nor
/// the backscatter finding is resolved, their last-seen stays, and the sweep says why; a later
/// sweep with definite refusals resolves them.
async fn a_sweep_that_could_not_judge_leaves_the_relay_open(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    add(s, "10.0.0.25", "mail-direct").await;
    let finding = |kind, test: &str| Finding {
        kind,
        severity: kind.default_severity(),
        summary: "s".into(),
        evidence: Evidence {
            tests: vec![test.into()],
            ..Evidence::default()
        },
    };
    let mut relay = listener("10.0.0.25");
    relay.findings = vec![
        finding(FindingKind::OpenRelay, "v1"),
        finding(FindingKind::BackscatterSource, "backscatter"),
    ];
    relay.tests = vec![
        relay_test("v1", TestKind::Relay, Verdict::Accepted, "250 2.1.5 Ok"),
        relay_test(
            "backscatter",
            TestKind::Backscatter,
            Verdict::Accepted,
            "250 2.1.5 Ok",
        ),
    ];
    let first = record_sweep(s, &meta(&["10.0.0.0/24"]), &[relay])
        .await
        .unwrap();
    let before = s.list_findings(&FindingFilter::default()).await.unwrap();
    assert_eq!(before.len(), 2, "{before:?}");

    let greylisted = "451 4.7.1 Greylisted, try again later";
    let mut again = listener("10.0.0.25");
    again.tests = vec![
        relay_test("v1", TestKind::Relay, Verdict::Inconclusive, greylisted),
        relay_test(
            "backscatter",
            TestKind::Backscatter,
            Verdict::Inconclusive,
            greylisted,
        ),
    ];
    let second = record_sweep(s, &meta(&["10.0.0.0/24"]), &[again])
        .await
        .unwrap();
    assert_eq!(second.findings_resolved, 0);
    assert_eq!(
        open_keys(s).await,
        [
            key("10.0.0.25", 25, "backscatter-source"),
            key("10.0.0.25", 25, "open-relay")
        ]
    );
    let after = s.list_findings(&FindingFilter::default()).await.unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((a.last_seen, a.last_sweep), (b.last_seen, b.last_sweep));
        assert_eq!(a.last_sweep, Some(first.id));
    }
    assert_eq!(second.notes.len(), 2, "{:?}", second.notes);
    assert!(
        second
            .notes
            .iter()
            .all(|n| n.contains("stays open") && n.contains("Greylisted")),
        "{:?}",
        second.notes
    );
    assert_eq!(
        s.get_sweep(second.id).await.unwrap().unwrap().notes,
        second.notes
    );

    let mut refused = listener("10.0.0.25");
    refused.tests = vec![
        relay_test(
            "v1",
            TestKind::Relay,
            Verdict::Refused,
            "554 5.7.1 Relay access denied",
        ),
        relay_test(
            "backscatter",
            TestKind::Backscatter,
            Verdict::Refused,
            "550 5.1.1 User unknown",
        ),
    ];
    let third = record_sweep(s, &meta(&["10.0.0.0/24"]), &[refused])
        .await
        .unwrap();
    assert_eq!(third.findings_resolved, 2);
    assert!(third.notes.is_empty());
    assert!(open_keys(s).await.is_empty());
}

/// `record_sweep_each` (the sweep command's path: results read back from a file one at a
/// time) stores each whole result, transcript included, reconciles like `record_sweep`, and
/// stores nothing when a result fails to come.
async fn results_streamed_in_are_recorded_whole_or_not_at_all(kind: Kind) {
    use relayguard_core::{Direction, TranscriptLine};
    let t = common::open(kind).await;
    let s = &t.store;
    let mut relay = listener("10.0.0.8");
    relay.transcript.push(TranscriptLine {
        session: 1,
        ms: 12,
        dir: Direction::Server,
        text: "250 2.1.5 Ok".into(),
    });
    relay.tests.push(relay_test(
        "plain",
        TestKind::Relay,
        Verdict::Accepted,
        "250 2.1.5 Ok",
    ));
    relay.findings.push(Finding {
        kind: FindingKind::OpenRelay,
        severity: Severity::Critical,
        summary: "relays".into(),
        evidence: Evidence {
            tests: vec!["plain".into()],
            ..Evidence::default()
        },
    });
    let silent = HostResult::unreachable("10.0.0.9".parse().unwrap(), 25, PortState::Filtered);

    // A result that cannot be read: nothing of the sweep is stored.
    let broken = vec![Ok(relay.clone()), Err("the file was cut short")];
    let e = s
        .record_sweep_each(&meta(&[]), broken)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("the file was cut short"), "{e}");
    assert!(s.list_sweeps().await.unwrap().is_empty());
    assert!(open_keys(s).await.is_empty());

    let whole = vec![Ok::<_, String>(relay.clone()), Ok(silent)];
    // No --ports in the metadata: the ports are those of the results.
    let mut m = meta(&["10.0.0.0/24"]);
    m.ports.clear();
    let row = s.record_sweep_each(&m, whole).await.unwrap();
    assert_eq!(
        (row.results, row.open_ports, row.ports.clone()),
        (2, 1, vec![25])
    );
    assert_eq!(
        open_keys(s).await,
        vec![
            key("10.0.0.8", 25, "open-relay"),
            key("10.0.0.8", 25, "unregistered-mta")
        ]
    );
    let seen = s.observations_for("10.0.0.8", 10).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].result.as_ref(),
        Some(&relay),
        "the whole result, transcript included"
    );
    // The filtered port is coverage, not an observation.
    assert!(s.observations_for("10.0.0.9", 10).await.unwrap().is_empty());
}
