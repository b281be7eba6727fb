//! Relay and backscatter verdicts on setups common on campuses, against real Postfix: hosts
//! behind a real nftables DNAT (in network namespaces the test creates, with no route out), and
//! a catch-all backup MX. Nothing leaves loopback or the namespaces (every Postfix transport is
//! `discard:`, and the scanner's namespace has no route but to the campus one).

use std::process::Command;

use relayguard_testkit::dnat::{DnatCampus, SCANNER};
use relayguard_testkit::report::{host, kinds, tests_of};
use relayguard_testkit::{DOMAIN, Personality, Postfix, scanner_source_addr};
use serde_json::Value;

/// The sweep arguments every test uses: quick timeouts, JSON, no DNS (the namespaces have no
/// resolver).
fn sweep_args() -> Vec<&'static str> {
    vec![
        "sweep",
        "--connect-timeout",
        "2",
        "--command-timeout",
        "10",
        "--host-deadline",
        "60",
        "--rate",
        "0",
        "--no-progress",
        "--no-dns",
        "--format",
        "json",
    ]
}

fn parse(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "output is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn finding<'a>(h: &'a Value, kind: &str) -> &'a Value {
    h["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:#}", h["findings"]))
}

#[test]
fn behind_a_dnat_an_open_relay_is_not_also_a_backscatter_source() {
    let campus = DnatCampus::start(&[
        Personality::OpenRelay,
        Personality::Closed,
        Personality::Backscatter,
    ]);
    let (open, _) = campus.host(0);
    let (closed, _) = campus.host(1);
    let (backscatter, _) = campus.host(2);
    let out = campus
        .scanner_command(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
        .args(sweep_args())
        .args([open, closed, backscatter].map(|a| a.to_string()))
        .output()
        .expect("run relayguard in the scanner namespace");
    let doc = parse(out);

    // Every host was reached through the DNAT, and tested from the scanner's address.
    let counters = campus.ruleset();
    assert_eq!(
        counters.matches("counter packets 0 ").count(),
        0,
        "a DNAT rule was never crossed:\n{counters}"
    );
    for addr in [open, closed, backscatter] {
        let h = host(&doc, addr);
        assert_eq!(h["state"], "open", "{h:#}");
        assert_eq!(h["smtp"]["mta"], "postfix");
        assert_eq!(h["source"], SCANNER.to_string(), "vantage of {addr}");
    }

    // The open relay: it accepts the unknown user at the public address literal (which it does
    // not know as its own), as it accepts anything; it refuses the unknown user at its name.
    let h = host(&doc, open);
    assert_eq!(
        kinds(h),
        ["no-starttls", "open-relay", "vrfy-enabled"]
            .map(String::from)
            .into()
    );
    let literal = format!("[{open}]>");
    let at_literal = tests_of(h, "backscatter")
        .find(|t| t["argument"].as_str().unwrap().ends_with(&literal))
        .expect("a backscatter test at the literal");
    assert!(
        at_literal["reply"].as_str().unwrap().starts_with("250"),
        "the DNAT case is reproduced only if the literal is accepted: {at_literal}"
    );
    assert_eq!(at_literal["verdict"], "inconclusive");
    let note = at_literal["note"].as_str().unwrap();
    assert!(
        note.starts_with("accepted at the address literal, but not backscatter")
            && note.contains("relays plainly external"),
        "{note}"
    );
    let named = tests_of(h, "backscatter")
        .find(|t| !t["argument"].as_str().unwrap().ends_with(&literal))
        .expect("a backscatter test at a name");
    assert!(
        named["reply"].as_str().unwrap().starts_with("550 5.1.1"),
        "{named}"
    );
    let relay = finding(h, "open-relay");
    assert_eq!(relay["evidence"]["relay_strength"], "external");
    assert!(
        relay["summary"]
            .as_str()
            .unwrap()
            .contains("plainly external recipient"),
        "{relay}"
    );

    // The closed host refuses the literal as relaying: nothing to report about relaying.
    let h = host(&doc, closed);
    assert_eq!(
        kinds(h),
        ["no-starttls", "vrfy-enabled"].map(String::from).into()
    );
    let at_literal = tests_of(h, "backscatter")
        .find(|t| {
            t["argument"]
                .as_str()
                .unwrap()
                .ends_with(&format!("[{closed}]>"))
        })
        .unwrap();
    assert!(
        at_literal["reply"]
            .as_str()
            .unwrap()
            .starts_with("454 4.7.1"),
        "{at_literal}"
    );

    // A real backscatter source stays one: the unknown user at its own name is accepted.
    let h = host(&doc, backscatter);
    assert!(kinds(h).contains("backscatter-source"), "{:?}", kinds(h));
    assert!(!kinds(h).contains("open-relay"), "{:?}", kinds(h));
    let f = finding(h, "backscatter-source");
    assert!(
        !f["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("[{backscatter}]")),
        "the refused literal is no evidence: {f}"
    );
}

#[test]
fn a_catch_all_backup_mx_is_relay_suspected_not_silent_and_not_open() {
    // Backup MX for campus.test with an empty relay_recipient_maps (Postfix's default) and
    // allow_untrusted_routing = yes: it accepts user%ext@campus.test, but also any unknown
    // user there, so the 250 cannot tell relaying from ordinary delivery to the primary.
    let backup = Postfix::start(Personality::UntrustedRouting);
    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
        .args(sweep_args())
        .args(["--source", &scanner_source_addr().to_string()])
        .arg(backup.addr().to_string())
        .output()
        .expect("run relayguard");
    let doc = parse(out);
    let h = host(&doc, backup.addr());
    assert_eq!(h["source"], scanner_source_addr().to_string());
    let k = kinds(h);
    assert!(k.contains("relay-suspected"), "{k:?}");
    assert!(!k.contains("open-relay"), "{k:?}: {:#}", h["tests"]);

    // The control at the backed-up domain was accepted, the plain relay refused.
    let control = tests_of(h, "relay-control")
        .find(|t| {
            t["argument"]
                .as_str()
                .unwrap()
                .ends_with(&format!("@{DOMAIN}>"))
        })
        .expect("a control at the parent domain");
    assert_eq!(control["verdict"], "accepted", "{control}");
    let plain = tests_of(h, "relay")
        .find(|t| t["id"] == "external-sender")
        .unwrap();
    assert!(
        plain["reply"].as_str().unwrap().starts_with("554 5.7.1"),
        "{plain}"
    );

    // Each routed form at campus.test was accepted and is named in the finding.
    let suspected = finding(h, "relay-suspected");
    let summary = suspected["summary"].as_str().unwrap();
    for id in ["percent-hack-host", "double-at-host", "bang-path-host"] {
        let t = tests_of(h, "relay")
            .find(|t| {
                t["id"] == id
                    && t["argument"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("@{DOMAIN}>"))
            })
            .unwrap_or_else(|| panic!("no {id} at {DOMAIN}"));
        assert!(t["reply"].as_str().unwrap().starts_with("250"), "{t}");
        assert_eq!(t["verdict"], "inconclusive", "{t}");
        assert!(summary.contains(id), "{summary}");
    }
    assert!(
        summary.contains(&format!("swaks --server {}:25 --to '", backup.addr())),
        "{summary}"
    );
    assert!(!summary.contains("open relay"), "{summary}");
    assert_eq!(suspected["severity"], "medium");
    // Never DATA.
    assert!(
        h["transcript"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["text"] != "DATA")
    );
}
