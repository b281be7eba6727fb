//! End-to-end: `relayguard sweep` against real Postfix instances with different personalities,
//! swept from an address outside their trusted networks. Verdicts and finding kinds are asserted
//! exactly; nothing leaves loopback (every Postfix transport is `discard:`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Output};

use relayguard_testkit::report::{host, kinds};
use relayguard_testkit::{DOMAIN, Personality, Postfix, scanner_source_addr};
use serde_json::Value;

/// Runs the CLI with quick timeouts and returns its output.
fn relayguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
        .arg("sweep")
        .args([
            "--connect-timeout",
            "2",
            "--command-timeout",
            "10",
            "--host-deadline",
            "60",
        ])
        .args(["--rate", "0", "--no-progress"])
        .args(args)
        .output()
        .expect("run relayguard")
}

fn sweep_json(targets: &[String], extra: &[&str]) -> (i32, Value) {
    let source = scanner_source_addr().to_string();
    let mut args: Vec<&str> = vec!["--format", "json", "--source", &source];
    args.extend_from_slice(extra);
    args.extend(targets.iter().map(String::as_str));
    let out = relayguard(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}); stderr: {stderr}"));
    (out.status.code().expect("exited"), doc)
}

/// The first test with this id.
fn test<'a>(host: &'a Value, id: &str) -> &'a Value {
    host["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no test {id} in {:#}", host["tests"]))
}

fn verdict<'a>(host: &'a Value, id: &str) -> &'a str {
    test(host, id)["verdict"].as_str().unwrap()
}

fn reply<'a>(host: &'a Value, id: &str) -> &'a str {
    test(host, id)["reply"].as_str().unwrap()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(std::string::ToString::to_string).collect()
}

#[test]
fn one_sweep_tells_every_postfix_personality_apart() {
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::Closed);
    let strict = Postfix::start(Personality::ClosedStrict);
    let backscatter = Postfix::start(Personality::Backscatter);
    let tls = Postfix::start(Personality::StartTlsSelfSigned);
    let routing = Postfix::start(Personality::UntrustedRouting);
    // Nothing listens on the scanner's own source address: a closed port.
    let nothing = Ipv4Addr::new(127, 66, 0, 77);
    let all = [&open, &closed, &strict, &backscatter, &tls, &routing];
    let mut targets: Vec<String> = all.iter().map(|p| p.addr().to_string()).collect();
    targets.push(nothing.to_string());

    // Verdicts are asserted vector by vector: every vector runs.
    let (code, doc) = sweep_json(&targets, &["--all", "--all-vectors"]);
    assert_eq!(code, 1, "findings mean exit code 1");
    assert_eq!(doc["summary"]["open"], 6);
    assert_eq!(doc["summary"]["closed"], 1);
    assert_eq!(host(&doc, nothing)["state"], "closed");

    for pf in all {
        let h = host(&doc, pf.addr());
        assert_eq!(h["state"], "open");
        assert_eq!(h["smtp"]["mta"], "postfix", "{}", h["smtp"]);
        assert!(
            h["smtp"]["names"]
                .as_array()
                .unwrap()
                .contains(&Value::from(pf.hostname())),
            "own name learned from the banner: {}",
            h["smtp"]
        );
        // Never DATA, on any session.
        let lines = h["transcript"]["lines"].as_array().unwrap();
        assert!(lines.iter().all(|l| l["text"] != "DATA"));
        // A real MTA speaks only in turn, in plaintext and inside TLS: never a desync.
        assert!(
            !lines
                .iter()
                .any(|l| l["text"].as_str().unwrap_or_default().starts_with("desync")),
            "{}: {lines:#?}",
            pf.addr()
        );
        // Every relay test got an answer: no error-limit hang-ups or timeouts left over.
        for t in h["tests"].as_array().unwrap() {
            assert_ne!(t["reply"], "", "test without a reply on {}: {t}", pf.addr());
        }
        // Postfix offers PIPELINING: each envelope went in one flight (MAIL, RCPT and RSET
        // sent before the first of their replies).
        let texts: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l["dir"].as_str().unwrap(), l["text"].as_str().unwrap()))
            .collect();
        let flights = texts
            .windows(3)
            .filter(|w| {
                w.iter().all(|(dir, _)| *dir == "client")
                    && w[0].1.starts_with("MAIL FROM:")
                    && w[1].1.starts_with("RCPT TO:")
                    && w[2].1 == "RSET"
            })
            .count();
        let mails = texts
            .iter()
            .filter(|(dir, t)| *dir == "client" && t.starts_with("MAIL FROM:"))
            .count();
        assert!(
            mails > 0 && flights == mails,
            "{}: {flights} flights for {mails} MAIL",
            pf.addr()
        );
    }

    let h = host(&doc, open.addr());
    assert_eq!(
        kinds(h),
        set(&["open-relay", "no-starttls", "vrfy-enabled"])
    );
    assert_eq!(verdict(h, "external-sender"), "accepted");
    assert_eq!(verdict(h, "null-sender"), "accepted");
    assert!(reply(h, "external-sender").starts_with("250"));

    let h = host(&doc, closed.addr());
    assert_eq!(kinds(h), set(&["no-starttls", "vrfy-enabled"]));
    assert_eq!(verdict(h, "external-sender"), "refused");
    assert!(
        reply(h, "external-sender").starts_with("454 4.7.1"),
        "{}",
        reply(h, "external-sender")
    );
    assert_eq!(verdict(h, "backscatter"), "refused");
    assert!(
        reply(h, "backscatter").starts_with("550 5.1.1"),
        "{}",
        reply(h, "backscatter")
    );

    let h = host(&doc, strict.addr());
    assert_eq!(kinds(h), set(&["no-starttls"]));
    assert!(
        reply(h, "external-sender").starts_with("554 5.7.1"),
        "{}",
        reply(h, "external-sender")
    );
    assert_eq!(verdict(h, "vrfy"), "refused");

    let h = host(&doc, backscatter.addr());
    // Every local name exists as far as this Postfix knows, so VRFY cannot tell users apart.
    assert_eq!(kinds(h), set(&["backscatter-source", "no-starttls"]));
    assert_eq!(verdict(h, "vrfy"), "refused", "{}", reply(h, "vrfy"));
    assert_eq!(verdict(h, "backscatter"), "accepted");
    // Accept-all for local users, yet not a relay: Postfix refuses every routed form too.
    for t in h["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "relay")
    {
        assert_eq!(t["verdict"], "refused", "{t}");
    }
    assert_eq!(verdict(h, "external-sender"), "refused");

    let h = host(&doc, tls.addr());
    assert_eq!(kinds(h), set(&["tls-certificate-invalid"]));
    let t = &h["smtp"]["tls"];
    assert_eq!(t["established"], true);
    assert_eq!(t["certificate_valid"], false);
    assert_eq!(t["checked_name"], tls.hostname());
    assert!(
        t["chain"][0]["subject"]
            .as_str()
            .unwrap()
            .contains(tls.hostname()),
        "{t}"
    );
    assert_eq!(t["chain"][0]["sha256"].as_str().unwrap().len(), 64);
    // The relay tests ran inside TLS and were refused.
    assert_eq!(verdict(h, "external-sender"), "refused");

    let h = host(&doc, routing.addr());
    // A catch-all backup MX (relay_recipient_maps is empty): it also accepts any unknown user
    // at the domain it backs up, so its 250 to a routed form is suspect, not proof.
    assert!(kinds(h).contains("relay-suspected"), "{:?}", kinds(h));
    assert!(!kinds(h).contains("open-relay"), "{:?}", kinds(h));
    assert_eq!(verdict(h, "external-sender"), "refused");
    // Caught only through the domain it is backup MX for, learned from its own name.
    let routed: Vec<(&str, &str)> = h["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["id"] == "percent-hack-host")
        .map(|t| {
            (
                t["argument"].as_str().unwrap(),
                t["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        routed.contains(&(
            format!("<relayguard-test%example.com@{DOMAIN}>").as_str(),
            "inconclusive"
        )),
        "{routed:?}"
    );
    assert!(
        routed.contains(&(
            format!("<relayguard-test%example.com@{}>", routing.hostname()).as_str(),
            "refused"
        )),
        "{routed:?}"
    );
    let relay = h["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "relay-suspected")
        .unwrap();
    assert!(
        relay["evidence"]["tests"]
            .as_array()
            .unwrap()
            .contains(&Value::from("percent-hack-host"))
    );
}

#[test]
fn an_open_relay_is_decided_by_its_first_plain_vector_and_all_vectors_runs_the_rest() {
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::ClosedStrict);
    let targets = vec![open.addr().to_string(), closed.addr().to_string()];
    let relay_tests = |h: &Value| -> Vec<Value> {
        h["tests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "relay")
            .cloned()
            .collect()
    };
    let not_run = |h: &Value| {
        relay_tests(h)
            .iter()
            .filter(|t| t["verdict"] == "not-run")
            .count()
    };

    let (_, quick) = sweep_json(&targets, &[]);
    let (_, full) = sweep_json(&targets, &["--all-vectors"]);

    let (q, f) = (host(&quick, open.addr()), host(&full, open.addr()));
    let vectors = relay_tests(f).len();
    assert!(vectors > 10, "{f:#}");
    // Decided by a plainly external recipient: most vectors were never sent, and say why.
    let skipped = not_run(q);
    assert!(
        skipped >= vectors / 3,
        "{skipped} of {vectors} skipped: {q:#}"
    );
    assert!(
        relay_tests(q)
            .iter()
            .filter(|t| t["verdict"] == "not-run")
            .all(|t| t["note"].as_str().unwrap().contains("--all-vectors")),
        "{q:#}"
    );
    assert_eq!(relay_tests(q).len(), vectors, "every vector is listed");
    // Decided by a plainly external recipient (whichever session got one accepted first).
    assert!(
        relay_tests(q).iter().any(|t| t["verdict"] == "accepted"
            && t["argument"] == "<relayguard-test@example.com>"),
        "{q:#}"
    );
    let sent = |h: &Value| {
        h["transcript"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["dir"] == "client" && l["text"].as_str().unwrap().starts_with("RCPT TO:"))
            .count()
    };
    assert!(
        sent(q) < sent(f),
        "fewer RCPTs sent: {} vs {}",
        sent(q),
        sent(f)
    );
    // The exhaustive run sends everything, and the findings are the same.
    assert_eq!(not_run(f), 0, "{f:#}");
    assert_eq!(kinds(q), kinds(f));
    assert!(kinds(q).contains("open-relay"));

    // A closed host is never decided early: every vector runs, the same findings either way.
    let (q, f) = (host(&quick, closed.addr()), host(&full, closed.addr()));
    assert_eq!(not_run(q), 0, "{q:#}");
    assert_eq!(relay_tests(q).len(), relay_tests(f).len());
    assert_eq!(kinds(q), kinds(f));
}

#[test]
fn the_vantage_point_decides_the_verdict() {
    // A stock Postfix trusts its own network (here 127.0.0.1/32): from inside it relays, from
    // outside it refuses. relayguard reports what it sees from where it stands.
    let closed = Postfix::start(Personality::Closed);
    let target = closed.addr().to_string();
    let inside = relayguard(&["--format", "json", "--source", "127.0.0.1", &target]);
    let doc: Value = serde_json::from_slice(&inside.stdout).unwrap();
    assert!(kinds(host(&doc, closed.addr())).contains("open-relay"));
    let (_, doc) = sweep_json(&[target], &[]);
    assert!(!kinds(host(&doc, closed.addr())).contains("open-relay"));
}

#[test]
fn a_postfix_that_slows_down_after_three_errors_gets_fresh_sessions() {
    // A common hardening: after 3 errors in a session Postfix holds every reply back by
    // smtpd_error_sleep_time (1 s). relayguard must notice and move on to a fresh session
    // rather than sit through a second per reply.
    let strict = Postfix::start(Personality::ClosedStrict);
    strict.reconfigure(&["smtpd_soft_error_limit = 3", "smtpd_error_sleep_time = 1s"]);
    let (_, doc) = sweep_json(&[strict.addr().to_string()], &["--no-dns"]);
    let h = host(&doc, strict.addr());
    let relay: Vec<&Value> = relayguard_testkit::report::tests_of(h, "relay").collect();
    assert!(
        relay.iter().all(|t| t["verdict"] == "refused"),
        "{relay:#?}"
    );
    assert!(!kinds(h).contains("open-relay"));
    // Replies that came a second or more after the command, per session. Once Postfix holds
    // replies back, relayguard finishes the test under way (at most its MAIL, RCPT and RSET)
    // and leaves; had it stayed, every reply after that would be held back too (15 in a
    // session of 8 refused relay tests).
    let mut held: std::collections::BTreeMap<u64, u32> = Default::default();
    let mut asked_at: Option<u64> = None;
    for line in h["transcript"]["lines"].as_array().unwrap() {
        let ms = line["ms"].as_u64().unwrap();
        match line["dir"].as_str().unwrap() {
            "client" => asked_at = Some(ms),
            "server" => {
                if let Some(at) = asked_at.take()
                    && ms >= at + 900
                {
                    *held.entry(line["session"].as_u64().unwrap()).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    assert!(!held.is_empty(), "Postfix never held a reply back: {h:#}");
    assert!(
        held.values().all(|&n| n <= 3),
        "held back per session: {held:?}"
    );
}

#[test]
fn excluded_hosts_are_never_contacted_and_formats_agree() {
    let open = Postfix::start(Personality::OpenRelay);
    let excluded = Postfix::start(Personality::Closed);
    let source = scanner_source_addr().to_string();
    let targets = [open.addr().to_string(), excluded.addr().to_string()];
    let exclude = excluded.addr().to_string();

    let listed = relayguard(&[
        "--list-targets",
        "--exclude",
        &exclude,
        &targets[0],
        &targets[1],
    ]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), targets[0]);

    let csv = relayguard(&[
        "--format",
        "csv",
        "--source",
        &source,
        "--exclude",
        &exclude,
        &targets[0],
        &targets[1],
    ]);
    assert_eq!(csv.status.code(), Some(1));
    let csv = String::from_utf8(csv.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "address,port,state,mta,kind,severity,summary,error"
    );
    assert!(
        rows.iter().any(|r| r.starts_with(&format!(
            "{},25,open,postfix,open-relay,critical,",
            targets[0]
        ))),
        "{csv}"
    );
    assert!(!csv.contains(&exclude));

    let jsonl = relayguard(&[
        "--format",
        "jsonl",
        "--source",
        &source,
        "--exclude",
        &exclude,
        &targets[0],
        &targets[1],
    ]);
    let lines: Vec<Value> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["address"], targets[0]);

    let table = relayguard(&[
        "--source",
        &source,
        "--exclude",
        &exclude,
        &targets[0],
        &targets[1],
    ]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("open-relay(critical)"), "{table}");

    // The excluded instance saw no connection from the scanner at all.
    let log = excluded.log();
    assert!(
        !log.contains(&format!("[{source}]")),
        "excluded host was contacted:\n{log}"
    );
    assert!(
        open.log().contains(&format!("[{source}]")),
        "the sweep itself reached the open relay"
    );
}
