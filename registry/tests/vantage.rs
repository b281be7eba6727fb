//! Vantage-aware findings in the store, against real SQLite and real PostgreSQL: the vantages a
//! finding was seen from are kept, only they resolve it, an open relay's severity follows them,
//! and `reachable-from-outside` comes from vantages marked external.

mod common;

use common::Kind;
use relayguard_core::scan::{HostResult, PortState, SmtpInfo};
use relayguard_core::{Evidence, Finding, FindingKind, Severity};
use relayguard_registry::model::{HostInput, today};
use relayguard_registry::reconcile::Exposure;
use relayguard_registry::store::{FindingFilter, FindingRow, FindingStatus};
use relayguard_registry::{Store, SweepMeta, record_sweep};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    only_the_vantages_that_saw_a_relay_resolve_it_and_its_severity_follows_them,
    reachable_from_outside_comes_from_external_vantages_only,
    vantages_are_marked_and_listed,
);

fn meta(vantage: &str) -> SweepMeta {
    SweepMeta {
        vantage: vantage.into(),
        targets: vec!["10.0.0.0/24".into()],
        ports: vec![25],
        started_at: 1_700_000_000,
        finished_at: 1_700_000_100,
    }
}

fn listener(addr: &str) -> HostResult {
    let mut r = HostResult::unreachable(addr.parse().unwrap(), 25, PortState::Open);
    r.smtp = Some(SmtpInfo {
        banner: "220 mx ESMTP".into(),
        mta: "postfix".into(),
        ..Default::default()
    });
    r
}

fn relay(addr: &str) -> HostResult {
    let mut r = listener(addr);
    r.findings = vec![Finding {
        kind: FindingKind::OpenRelay,
        severity: Severity::Critical,
        summary: "relay".into(),
        evidence: Evidence::default(),
    }];
    r
}

async fn marked(store: &Store) {
    store
        .set_vantage("outside", Exposure::External)
        .await
        .unwrap();
    store
        .set_vantage("inside", Exposure::Internal)
        .await
        .unwrap();
}

async fn find(store: &Store, addr: &str, kind: &str) -> Option<FindingRow> {
    store
        .list_findings(&FindingFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.address == addr && f.kind == kind)
}

async fn only_the_vantages_that_saw_a_relay_resolve_it_and_its_severity_follows_them(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    marked(s).await;
    add(s, "10.0.0.5", "mail-direct").await;

    // The lab sees the relay: high, seen from inside only.
    record_sweep(s, &meta("inside"), &[relay("10.0.0.5")])
        .await
        .unwrap();
    let f = find(s, "10.0.0.5", "open-relay").await.unwrap();
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.vantages, ["inside"]);
    assert!(
        f.evidence["severity_by_vantage"]
            .as_str()
            .unwrap()
            .starts_with("high"),
        "{}",
        f.evidence
    );

    // The outside sees it too: critical, seen from both.
    record_sweep(s, &meta("outside"), &[relay("10.0.0.5")])
        .await
        .unwrap();
    let f = find(s, "10.0.0.5", "open-relay").await.unwrap();
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.vantages, ["inside", "outside"]);

    // The firewall closes port 25 from outside: the outside no longer sees it, the lab still
    // does. Open, high again, and the evidence says it is the lab's.
    let sw = record_sweep(s, &meta("outside"), &[]).await.unwrap();
    assert_eq!(sw.findings_resolved, 0);
    let f = find(s, "10.0.0.5", "open-relay").await.unwrap();
    assert_eq!(f.status, FindingStatus::Open);
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.vantages, ["inside"]);
    assert_eq!(f.evidence["vantages"][0]["name"], "inside");
    let high = s
        .list_findings(&FindingFilter {
            min_severity: Some(Severity::Critical),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(high.iter().all(|f| f.kind != "open-relay"), "{high:?}");

    // Another outside sweep that does not see it changes nothing: it is not the outside's.
    let sw = record_sweep(s, &meta("outside"), &[]).await.unwrap();
    assert_eq!(sw.findings_resolved, 0);
    assert_eq!(
        find(s, "10.0.0.5", "open-relay").await.unwrap().status,
        FindingStatus::Open
    );

    // The lab no longer sees it: resolved.
    let sw = record_sweep(s, &meta("inside"), &[]).await.unwrap();
    assert_eq!(sw.findings_resolved, 1);
    assert_eq!(
        find(s, "10.0.0.5", "open-relay").await.unwrap().status,
        FindingStatus::Resolved
    );
}

async fn reachable_from_outside_comes_from_external_vantages_only(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    marked(s).await;
    add(s, "10.0.0.1", "mail-direct").await;
    add(s, "10.0.0.2", "internal-only").await;
    let both = [listener("10.0.0.1"), listener("10.0.0.2")];

    record_sweep(s, &meta("inside"), &both).await.unwrap();
    record_sweep(s, &meta("unmarked"), &both).await.unwrap();
    assert!(
        find(s, "10.0.0.2", "reachable-from-outside")
            .await
            .is_none()
    );

    record_sweep(s, &meta("outside"), &both).await.unwrap();
    assert!(
        find(s, "10.0.0.1", "reachable-from-outside")
            .await
            .is_none()
    );
    let f = find(s, "10.0.0.2", "reachable-from-outside").await.unwrap();
    assert_eq!(f.status, FindingStatus::Open);
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.vantages, ["outside"]);
    assert_eq!(f.evidence["vantages"][0]["exposure"], "external");

    // The lab still reaches it: that resolves nothing the outside saw.
    record_sweep(s, &meta("inside"), &[listener("10.0.0.1")])
        .await
        .unwrap();
    let f = find(s, "10.0.0.2", "reachable-from-outside").await.unwrap();
    assert_eq!(f.status, FindingStatus::Open);
    // The firewall is fixed: the outside no longer reaches it.
    record_sweep(s, &meta("outside"), &[listener("10.0.0.1")])
        .await
        .unwrap();
    let f = find(s, "10.0.0.2", "reachable-from-outside").await.unwrap();
    assert_eq!(f.status, FindingStatus::Resolved);
}

async fn vantages_are_marked_and_listed(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    marked(s).await;
    s.set_vantage("outside", Exposure::Internal).await.unwrap();
    let list: Vec<(String, Exposure)> = s
        .list_vantages()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.exposure))
        .collect();
    assert_eq!(
        list,
        [
            ("inside".to_string(), Exposure::Internal),
            ("outside".to_string(), Exposure::Internal)
        ]
    );
    assert!(s.set_vantage(" ", Exposure::External).await.is_err());
}

async fn add(store: &Store, addr: &str, role: &str) {
    let input = HostInput {
        address: addr.into(),
        hostname: format!("h{}.example.ac.jp", addr.replace('.', "-")),
        role: role.into(),
        admin_name: "Admin".into(),
        admin_email: "admin@example.ac.jp".into(),
        ..Default::default()
    };
    store
        .add_host(&input.validate(today()).unwrap())
        .await
        .unwrap();
}
