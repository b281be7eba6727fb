//! End-to-end against real Sendmail 8.17 (Debian 12's sendmail-bin, extracted into a private
//! directory and run in a private mount + UTS namespace by tests/mta/sendmail.sh; nothing is
//! installed, mail is only ever queued and the smart host is 127.0.0.1:9 where nothing listens).
//!
//! The instances run with RELAYGUARD_SENDMAIL_DNS=off (Debian's service.switch-nodns): every
//! lookup fails permanently, so the answers are the stable 5xx ones ("553 5.1.8 Domain of sender
//! address ... does not exist", "550 5.7.1 Relaying denied. IP name lookup failed") rather than
//! the 4xx that an unreachable resolver gives.

use std::path::{Path, PathBuf};
use std::process::Command;

use relayguard_testkit::report::{host, kinds, tests_of};
use serde_json::Value;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mta/sendmail.sh")
}

/// A running instance, stopped on drop.
struct Sendmail {
    name: String,
    addr: String,
}

impl Sendmail {
    fn start(personality: &str, n: u8) -> Sendmail {
        let slot = std::process::id() % 200;
        let addr = format!("127.79.{slot}.{n}");
        let name = format!("s{slot}-{n}");
        let out = Command::new(script())
            .args(["start", &name, personality, &addr])
            .env("RELAYGUARD_SENDMAIL_DNS", "off")
            .output()
            .expect("run tests/mta/sendmail.sh");
        assert!(
            out.status.success(),
            "sendmail.sh start {name} {personality} {addr} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sendmail { name, addr }
    }

    fn host_name(&self) -> String {
        format!("{}.sendmail.test", self.name)
    }
}

impl Drop for Sendmail {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", &self.name]).status();
    }
}

fn reply(t: &Value) -> &str {
    t["reply"].as_str().unwrap_or("")
}

#[test]
fn sendmail_verdicts() {
    let open = Sendmail::start("open", 1);
    let closed = Sendmail::start("closed", 2);
    let localfrom = Sendmail::start("localfrom", 3);
    let all = [&open, &closed, &localfrom];

    // One sweep: each instance sees 5 connections from 127.66.0.1, under Debian's default
    // "ClientRate: 10" (per 10 minutes) that would otherwise answer "421 4.3.2 Connection rate
    // limit exceeded".
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
        .args(["--command-timeout", "15"])
        .args(all.iter().map(|m| m.addr.as_str()))
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["summary"]["open"], 3, "{:#}", doc["summary"]);

    for m in all {
        let h = host(&doc, &m.addr);
        assert_eq!(h["smtp"]["mta"], "sendmail", "{}: {:#}", m.name, h["smtp"]);
        for t in h["tests"].as_array().unwrap() {
            assert_ne!(reply(t), "", "{}: {t}", m.name);
            assert!(
                !reply(t).starts_with("421"),
                "{}: rate limited: {t}",
                m.name
            );
        }
        // Debian's sendmail.mc sets needvrfyhelo/needexpnhelo but not novrfy/noexpn: VRFY and
        // EXPN really answer, so these are true positives.
        let vrfy = tests_of(h, "vrfy").next().expect("a vrfy test");
        assert!(
            reply(vrfy).starts_with(&format!("250 2.1.5 <postmaster@{}>", m.host_name()))
                && reply(vrfy).contains("550 5.1.1 rg-")
                && reply(vrfy).ends_with("User unknown"),
            "{}: {vrfy}",
            m.name
        );
        let expn = tests_of(h, "expn").next().expect("an expn test");
        assert!(
            reply(expn).starts_with("250 2.1.5 root <root@"),
            "{}: {expn}",
            m.name
        );
        let k = kinds(h);
        assert!(k.contains("vrfy-enabled"), "{}: {k:?}", m.name);
        assert!(k.contains("expn-enabled"), "{}: {k:?}", m.name);
        // Unknown local users are refused at RCPT (after the retry with postmaster@HOST, since the
        // probe sender's domain does not resolve here): no backscatter.
        assert!(!k.contains("backscatter-source"), "{}: {k:?}", m.name);
        for t in tests_of(h, "backscatter") {
            assert_eq!(t["verdict"], "refused", "{}: {t}", m.name);
            assert!(reply(t).ends_with("... User unknown"), "{}: {t}", m.name);
        }
    }

    // promiscuous_relay: the plain relay, from an external sender (retried as postmaster@HOST:
    // the probe sender's domain does not resolve), is accepted.
    let h = host(&doc, &open.addr);
    assert!(kinds(h).contains("open-relay"), "{:?}", kinds(h));
    let plain = tests_of(h, "relay")
        .find(|t| t["id"] == "external-sender")
        .expect("external-sender test");
    assert_eq!(plain["verdict"], "accepted", "{plain}");
    assert!(reply(plain).contains("Recipient ok"), "{plain}");

    // Debian defaults: nothing relayed; the refusals are Sendmail's.
    let h = host(&doc, &closed.addr);
    assert!(!kinds(h).contains("open-relay"), "{:?}", kinds(h));
    assert!(
        tests_of(h, "relay").all(|t| t["verdict"] != "accepted"),
        "{:#}",
        h["tests"]
    );
    assert!(
        tests_of(h, "relay").any(|t| t["verdict"] == "refused"
            && reply(t).contains("550 5.7.1")
            && reply(t).contains("Relaying denied")),
        "{:#}",
        h["tests"]
    );

    // relay_local_from: a sender at the host's own name relays, an external one does not.
    let h = host(&doc, &localfrom.addr);
    assert!(kinds(h).contains("open-relay"), "{:#}", h["tests"]);
    let host_sender = format!("<relayguard-probe@{}>", localfrom.host_name());
    let relay_tests: Vec<&Value> = tests_of(h, "relay").collect();
    assert!(
        relay_tests.iter().any(|t| t["id"] == "host-sender"
            && t["mail_from"] == host_sender.as_str()
            && t["verdict"] == "accepted"),
        "{relay_tests:#?}"
    );
    let ext = relay_tests
        .iter()
        .find(|t| t["id"] == "external-sender")
        .expect("external-sender test");
    assert_ne!(ext["verdict"], "accepted", "{ext}");
}
