//! Two vantages, one registry: real sweeps (the built binary) from an "outside" and an "inside"
//! scanner namespace into a campus namespace whose nftables firewall lets only one host's port
//! 25 through to the outside, against real Postfix. `reachable-from-outside` must name exactly
//! the host the firewall passes, and an open relay must be critical only where the outside saw
//! it.
//!
//! ```text
//!   <tag>-o (outside)  veth-o 198.19.1.1/24, route 10.25.0.0/24 via 198.19.1.2, nothing else
//!   <tag>-i (inside)   veth-i 198.19.2.1/24, route 10.25.0.0/24 via 198.19.2.2, nothing else
//!   <tag>-c (campus)   198.19.1.2 and 198.19.2.2; Postfix K on 10.25.0.K (on lo);
//!                      nft input: from veth-o, only 10.25.0.1 tcp/25 is accepted
//! ```
//!
//! Nothing leaves the three namespaces: the scanners' only route leads to the campus, and every
//! Postfix transport is `discard:`. Needs root, `ip`, `nft` and the Debian `postfix` package.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

use relayguard_testkit::{Personality, Postfix};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_relayguard");

/// The three namespaces and the instances in the campus one; all removed on drop.
struct Campus {
    tag: String,
    hosts: Vec<Postfix>,
}

impl Campus {
    fn ns(&self, side: &str) -> String {
        format!("{}-{side}", self.tag)
    }

    fn start(personalities: &[Personality]) -> Campus {
        let mut campus = Campus {
            tag: format!("rgvan{}", std::process::id()),
            hosts: Vec::new(),
        };
        let c = campus.ns("c");
        ip(&["netns", "add", &c]);
        ip(&["-n", &c, "link", "set", "lo", "up"]);
        for (side, net) in [("o", 1), ("i", 2)] {
            let s = campus.ns(side);
            let (dev, peer) = (format!("veth-{side}"), format!("veth-c{side}"));
            ip(&["netns", "add", &s]);
            ip(&[
                "-n", &s, "link", "add", &dev, "type", "veth", "peer", "name", &peer, "netns", &c,
            ]);
            for (ns, d, addr) in [
                (&s, &dev, format!("198.19.{net}.1/24")),
                (&c, &peer, format!("198.19.{net}.2/24")),
            ] {
                ip(&["-n", ns, "addr", "add", &addr, "dev", d]);
                ip(&["-n", ns, "link", "set", d, "up"]);
            }
            ip(&["-n", &s, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &s,
                "route",
                "add",
                "10.25.0.0/24",
                "via",
                &format!("198.19.{net}.2"),
            ]);
        }
        campus.firewall(&[Ipv4Addr::new(10, 25, 0, 1)]);
        for (i, p) in personalities.iter().enumerate() {
            let k = i as u8 + 1;
            campus
                .hosts
                .push(Postfix::start_in_netns(*p, &c, Ipv4Addr::new(10, 25, 0, k)));
        }
        campus
    }

    /// Replaces the campus firewall: from the outside, port 25 only of `passed`.
    fn firewall(&self, passed: &[Ipv4Addr]) {
        let mut rules = String::from(
            "flush ruleset\ntable inet campus {\n  chain input {\n    type filter hook input priority filter; policy accept;\n",
        );
        for a in passed {
            rules += &format!(
                "    iifname \"veth-co\" ip daddr {a} tcp dport 25 counter accept comment \"pass\"\n"
            );
        }
        rules += "    iifname \"veth-co\" tcp dport 25 counter drop comment \"block\"\n  }\n}\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns("c"), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run nft (Debian package nftables)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft -f failed:\n{rules}");
    }

    /// The packets counted by the rule with `comment`.
    fn counted(&self, comment: &str) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("c"), "nft", "list", "ruleset"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains(&format!("comment \"{comment}\"")))
            .unwrap_or_else(|| panic!("no rule {comment}:\n{text}"));
        let n = line
            .split("counter packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no counter in {line}"));
        n.parse().unwrap()
    }
}

impl Drop for Campus {
    fn drop(&mut self) {
        self.hosts.clear();
        for side in ["o", "i", "c"] {
            let ns = self.ns(side);
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `relayguard ARGS` against the registry at `db`, here (not in a namespace).
fn relayguard(db: &str, args: &[&str]) -> String {
    ok(Command::new(BIN)
        .env("RELAYGUARD_DATABASE", db)
        .args(args)
        .output()
        .unwrap())
}

/// One real sweep of the campus block from the scanner namespace `side`, recorded as `vantage`;
/// returns the JSON report.
fn sweep(campus: &Campus, db: &str, side: &str, vantage: &str) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", &campus.ns(side), BIN])
        .env("RELAYGUARD_DATABASE", db)
        .args([
            "sweep",
            "10.25.0.0/29",
            "--vantage",
            vantage,
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
        ])
        .output()
        .unwrap();
    // Exit 1 is "findings to look at", 0 "nothing found"; anything else is a failure.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "sweep from {vantage}: {out:?}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Open findings of `kind`: address → (severity, vantages).
fn open(db: &str, kind: &str) -> Vec<(String, String, Vec<String>)> {
    let doc: Value = serde_json::from_str(&relayguard(
        db,
        &["findings", "--status", "open", "--format", "json"],
    ))
    .unwrap();
    let mut v: Vec<_> = doc
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .map(|f| {
            (
                f["address"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["vantages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The addresses a sweep's report found speaking SMTP.
fn answering(doc: &Value) -> Vec<String> {
    let mut v: Vec<String> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["state"] == "open" && h["smtp"].is_object())
        .map(|h| h["address"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(std::string::ToString::to_string).collect()
}

#[test]
fn reachable_from_outside_names_exactly_what_the_firewall_passes() {
    // 10.25.0.1: open relay registered internal-only, passed by the firewall (the mistake);
    // 10.25.0.2: open relay nobody registered, blocked from outside;
    // 10.25.0.3: closed, registered mail-via-gateway, blocked from outside.
    let campus = Campus::start(&[
        Personality::OpenRelay,
        Personality::OpenRelay,
        Personality::ClosedStrict,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/registry.db", dir.path().display());
    relayguard(&db, &["vantage", "set", "outside", "--external"]);
    relayguard(&db, &["vantage", "set", "inside", "--internal"]);
    assert_eq!(
        relayguard(&db, &["vantage", "list"]),
        "inside\tinternal\noutside\texternal\n"
    );
    for (addr, role) in [
        ("10.25.0.1", "internal-only"),
        ("10.25.0.3", "mail-via-gateway"),
    ] {
        relayguard(
            &db,
            &[
                "hosts",
                "add",
                addr,
                "--hostname",
                &format!("h{}.campus.test", &addr[8..]),
                "--role",
                role,
                "--admin-name",
                "Admin",
                "--admin-email",
                "admin@campus.test",
            ],
        );
    }

    let outside = sweep(&campus, &db, "o", "outside");
    assert_eq!(answering(&outside), ["10.25.0.1"]);
    // The firewall really decided: the outside reached the passed host and was dropped at
    // the others.
    assert!(campus.counted("pass") > 0);
    assert!(campus.counted("block") > 0);
    let inside = sweep(&campus, &db, "i", "inside");
    assert_eq!(answering(&inside), ["10.25.0.1", "10.25.0.2", "10.25.0.3"]);

    let reachable = open(&db, "reachable-from-outside");
    assert_eq!(
        reachable,
        [("10.25.0.1".into(), "high".into(), strs(&["outside"]))],
        "exactly the host the firewall passes"
    );
    assert_eq!(
        open(&db, "open-relay"),
        [
            (
                "10.25.0.1".into(),
                "critical".into(),
                strs(&["inside", "outside"])
            ),
            ("10.25.0.2".into(), "high".into(), strs(&["inside"])),
        ]
    );
    let csv = relayguard(&db, &["findings", "--status", "open", "--format", "csv"]);
    assert!(csv.lines().next().unwrap().ends_with(",vantages"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("10.25.0.1,25,open-relay,critical")
                && l.ends_with(",inside outside")),
        "{csv}"
    );

    // Another sweep from outside cannot see the inside-only relay, and does not resolve it.
    sweep(&campus, &db, "o", "outside");
    assert_eq!(open(&db, "open-relay").len(), 2);

    // The firewall is fixed: the outside no longer reaches 10.25.0.1. Its reachability is
    // resolved, and its relay, now seen from inside only, is high.
    campus.firewall(&[]);
    assert!(answering(&sweep(&campus, &db, "o", "outside")).is_empty());
    assert!(open(&db, "reachable-from-outside").is_empty());
    let relays: BTreeSet<_> = open(&db, "open-relay").into_iter().collect();
    assert_eq!(
        relays,
        BTreeSet::from([
            ("10.25.0.1".into(), "high".into(), strs(&["inside"])),
            ("10.25.0.2".into(), "high".into(), strs(&["inside"])),
        ])
    );
}
