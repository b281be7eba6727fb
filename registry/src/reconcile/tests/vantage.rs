//! Vantage-aware findings: who may resolve a finding, `open-relay` severity by vantage,
//! `reachable-from-outside`.

use super::*;

fn marked() -> Vantages {
    Vantages(HashMap::from([
        ("outside".to_string(), Exposure::External),
        ("inside".to_string(), Exposure::Internal),
    ]))
}

/// A snapshot of a sweep from `vantage`, with `open` findings seen by the vantages given.
fn from(vantage: &str, hosts: Vec<Host>, open: &[(&str, FindingKind, &[&str])]) -> Snapshot {
    let mut s = snapshot(hosts, &[]);
    s.vantage = Some(vantage.into());
    s.vantages = marked();
    s.open = open
        .iter()
        .map(|(a, k, v)| OpenFinding {
            key: key(a, 25, *k),
            source: FindingSource::Sweep,
            vantages: v.iter().map(std::string::ToString::to_string).collect(),
        })
        .collect();
    s
}

fn relay(address: &str) -> HostResult {
    let mut r = listener(address);
    r.findings = vec![Finding {
        kind: FindingKind::OpenRelay,
        severity: Severity::Critical,
        summary: "relay".into(),
        evidence: Evidence::default(),
    }];
    r
}

#[test]
fn a_sweep_from_another_vantage_does_not_resolve_a_finding() {
    // The relay answers from outside; the lab's sweep covers it but the lab cannot reach it.
    let s = from(
        "inside",
        vec![],
        &[("10.0.0.5", FindingKind::OpenRelay, &["outside"])],
    );
    let c = reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[]));
    assert!(c.resolve.is_empty(), "{:?}", c.resolve);
    assert!(c.narrow.is_empty() && c.held.is_empty(), "{c:?}");
    // From the vantage that saw it, the same silence resolves it.
    let s = from(
        "outside",
        vec![],
        &[("10.0.0.5", FindingKind::OpenRelay, &["outside"])],
    );
    let c = reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[]));
    assert_eq!(c.resolve, [key("10.0.0.5", 25, FindingKind::OpenRelay)]);
}

#[test]
fn a_finding_seen_from_two_vantages_stays_open_until_both_lose_it() {
    let both: &[&str] = &["inside", "outside"];
    let s = from(
        "outside",
        vec![],
        &[("10.0.0.5", FindingKind::OpenRelay, both)],
    );
    let c = reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[]));
    assert!(c.resolve.is_empty(), "{:?}", c.resolve);
    assert_eq!(
        c.narrow,
        [Narrowed {
            key: key("10.0.0.5", 25, FindingKind::OpenRelay),
            vantages: vec!["inside".into()],
            // Only the lab can relay through it now.
            severity: Some(Severity::High),
        }]
    );
    let s = from(
        "inside",
        vec![],
        &[("10.0.0.5", FindingKind::OpenRelay, &["inside"])],
    );
    let c = reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[]));
    assert_eq!(c.resolve, [key("10.0.0.5", 25, FindingKind::OpenRelay)]);
}

#[test]
fn a_finding_recorded_without_vantages_is_resolved_by_any_covering_sweep() {
    let s = from(
        "inside",
        vec![],
        &[("10.0.0.5", FindingKind::UnregisteredMta, &[])],
    );
    let c = reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[]));
    assert_eq!(
        c.resolve,
        [key("10.0.0.5", 25, FindingKind::UnregisteredMta)]
    );
}

#[test]
fn an_open_relay_is_critical_from_outside_and_high_from_inside_only() {
    let results = [relay("10.0.0.5")];
    let cov = coverage(&["10.0.0.0/24"], &results);
    let relay_of = |c: &Changes| {
        c.open
            .iter()
            .find(|f| f.key.kind == FindingKind::OpenRelay)
            .cloned()
            .expect("open-relay opened")
    };

    let f = relay_of(&reconcile(&from("inside", vec![], &[]), &results, &cov));
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.vantages, ["inside"]);
    let evidence = json_of(&f.evidence);
    let why = evidence["severity_by_vantage"].as_str().unwrap();
    assert!(why.starts_with("high") && why.contains("inside"), "{why}");
    assert_eq!(json_of(&f.evidence)["vantages"][0]["name"], "inside");
    assert_eq!(json_of(&f.evidence)["vantages"][0]["exposure"], "internal");

    let f = relay_of(&reconcile(&from("outside", vec![], &[]), &results, &cov));
    assert_eq!(f.severity, Severity::Critical);
    let evidence = json_of(&f.evidence);
    let why = evidence["severity_by_vantage"].as_str().unwrap();
    assert!(
        why.starts_with("critical") && why.contains("outside"),
        "{why}"
    );

    // Open from outside and seen again from inside: still critical, seen by both.
    let s = from(
        "inside",
        vec![],
        &[("10.0.0.5", FindingKind::OpenRelay, &["outside"])],
    );
    let f = relay_of(&reconcile(&s, &results, &cov));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.vantages, ["inside", "outside"]);

    // A vantage nobody marked does not lower a relay.
    let f = relay_of(&reconcile(&from("local", vec![], &[]), &results, &cov));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(
        json_of(&f.evidence)["vantages"][0]["exposure"],
        "unmarked (counts as internal)"
    );
}

#[test]
fn reachable_from_outside_is_raised_for_every_listener_but_a_mail_direct_one() {
    let mut suspended = host("10.0.0.6", Role::MailDirect);
    suspended.status = HostStatus::Suspended;
    let hosts = vec![
        host("10.0.0.1", Role::MailDirect),
        host("10.0.0.2", Role::MailViaGateway),
        host("10.0.0.3", Role::InternalOnly),
        host("10.0.0.4", Role::NonMail),
        suspended,
    ];
    let results: Vec<HostResult> = (1..=7).map(|k| listener(&format!("10.0.0.{k}"))).collect();
    let cov = coverage(&["10.0.0.0/24"], &results);
    let reachable = |c: &Changes| -> Vec<String> {
        c.open
            .iter()
            .filter(|f| f.key.kind == FindingKind::ReachableFromOutside)
            .map(|f| f.key.address.clone())
            .collect()
    };
    let c = reconcile(&from("outside", hosts.clone(), &[]), &results, &cov);
    assert_eq!(
        reachable(&c),
        [
            "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"
        ]
    );
    let f = c
        .open
        .iter()
        .find(|f| f.key == key("10.0.0.3", 25, FindingKind::ReachableFromOutside))
        .unwrap();
    assert_eq!(f.severity, Severity::High);
    assert!(f.summary.contains("internal-only"), "{}", f.summary);
    assert_eq!(f.vantages, ["outside"]);
    // Inside the firewall, or from a vantage nobody marked, answering says nothing about it.
    for v in ["inside", "local"] {
        let c = reconcile(&from(v, hosts.clone(), &[]), &results, &cov);
        assert!(reachable(&c).is_empty(), "{v}: {:?}", reachable(&c));
    }
    // A lab sweep that no longer reaches the host does not resolve what the outside saw.
    let s = from(
        "inside",
        hosts.clone(),
        &[("10.0.0.3", FindingKind::ReachableFromOutside, &["outside"])],
    );
    assert!(reconcile(&s, &[], &cov).resolve.is_empty());
    let s = from(
        "outside",
        hosts,
        &[("10.0.0.3", FindingKind::ReachableFromOutside, &["outside"])],
    );
    assert_eq!(
        reconcile(&s, &[], &coverage(&["10.0.0.0/24"], &[])).resolve,
        [key("10.0.0.3", 25, FindingKind::ReachableFromOutside)]
    );
}

#[test]
fn an_outside_sweep_counts_misses_only_for_mail_direct_hosts() {
    let hosts = vec![
        host("10.0.0.1", Role::MailDirect),
        host("10.0.0.2", Role::InternalOnly),
    ];
    let cov = coverage(&["10.0.0.0/24"], &[]);
    let c = reconcile(&from("outside", hosts.clone(), &[]), &[], &cov);
    assert_eq!(
        c.counters,
        [Counter::Missed {
            address: "10.0.0.1".into(),
            misses: 1
        }]
    );
    let c = reconcile(&from("inside", hosts, &[]), &[], &cov);
    assert_eq!(c.counters.len(), 2, "{:?}", c.counters);
}

/// A finding's evidence text, parsed.
fn json_of(evidence: &str) -> serde_json::Value {
    serde_json::from_str(evidence).expect("evidence is JSON")
}
