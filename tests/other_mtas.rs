//! End-to-end against real Exim 4.96 and OpenSMTPD 6.8 (Debian packages extracted into a private
//! directory and run in a private mount namespace by tests/mta/*.sh; nothing is installed and
//! every delivery ends in a blackhole or a local maildir). One sweep covers all of them.

use std::path::Path;
use std::process::Command;

use relayguard_testkit::report::{host, kinds, tests_of};
use serde_json::Value;

/// A running instance, stopped on drop.
struct Mta {
    script: &'static str,
    name: String,
    addr: String,
}

impl Mta {
    fn start(script: &'static str, personality: &str, n: u8) -> Mta {
        let slot = std::process::id() % 200;
        let addr = format!("127.78.{slot}.{n}");
        let name = format!("t{slot}-{n}");
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/mta")
            .join(script);
        let out = Command::new(&path)
            .args(["start", &name, personality, &addr])
            .output()
            .expect("run the MTA start script");
        assert!(
            out.status.success(),
            "{script} start {name} {personality} {addr} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mta { script, name, addr }
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/mta")
            .join(self.script);
        let _ = Command::new(path).args(["stop", &self.name]).status();
    }
}

#[test]
fn exim_and_opensmtpd_verdicts() {
    let exim_open = Mta::start("exim.sh", "open", 1);
    let exim_closed = Mta::start("exim.sh", "closed", 2);
    let exim_sender = Mta::start("exim.sh", "senderrelay", 3);
    let smtpd_open = Mta::start("opensmtpd.sh", "open", 4);
    let smtpd_closed = Mta::start("opensmtpd.sh", "closed", 5);
    let all = [
        &exim_open,
        &exim_closed,
        &exim_sender,
        &smtpd_open,
        &smtpd_closed,
    ];

    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
        .args([
            "sweep",
            // Verdicts are asserted vector by vector: every vector runs.
            "--all-vectors",
            "--format",
            "json",
            "--no-progress",
            "--source",
            "127.66.0.1",
        ])
        .args(["--rate", "0", "--command-timeout", "10"])
        .args(all.iter().map(|m| m.addr.as_str()))
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["summary"]["open"], 5);
    for m in all {
        let h = host(&doc, &m.addr);
        // Every test got an answer despite Exim hanging up after three syntax errors.
        for t in h["tests"].as_array().unwrap() {
            assert_ne!(t["reply"], "", "{}: {t}", m.name);
        }
        assert!(
            !kinds(h).contains("vrfy-enabled"),
            "{}: Exim/OpenSMTPD VRFY leaks nothing",
            m.name
        );
    }

    let h = host(&doc, &exim_open.addr);
    assert_eq!(h["smtp"]["mta"], "exim");
    assert!(kinds(h).contains("open-relay"), "{:?}", kinds(h));

    let h = host(&doc, &exim_closed.addr);
    assert!(!kinds(h).contains("open-relay"), "{:?}", kinds(h));
    assert!(
        tests_of(h, "relay").all(|t| t["verdict"] == "refused"),
        "{:#}",
        h["tests"]
    );
    assert!(tests_of(h, "relay").any(|t| t["reply"] == "550 relay not permitted"));

    // Relays for senders in its own domains. The made-up probe sender fails Exim's sender
    // verification; retried as postmaster@HOST, the relay shows.
    let h = host(&doc, &exim_sender.addr);
    assert!(kinds(h).contains("open-relay"), "{:#}", h["tests"]);
    let accepted: Vec<&Value> = tests_of(h, "relay")
        .filter(|t| t["verdict"] == "accepted")
        .collect();
    assert!(
        accepted.iter().any(|t| t["note"]
            .as_str()
            .unwrap_or("")
            .contains("retried with <postmaster@")),
        "{accepted:#?}"
    );

    let h = host(&doc, &smtpd_open.addr);
    assert_eq!(h["smtp"]["mta"], "opensmtpd");
    assert!(kinds(h).contains("open-relay"), "{:?}", kinds(h));

    let h = host(&doc, &smtpd_closed.addr);
    assert_eq!(kinds(h), ["no-starttls".to_string()].into_iter().collect());
    assert!(
        tests_of(h, "relay").all(|t| t["verdict"] == "refused"),
        "{:#}",
        h["tests"]
    );
}
