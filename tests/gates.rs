//! End-to-end: servers behind gates, swept by `relayguard sweep` from an address outside their
//! trusted networks. Real Postfix behind real postscreen (deep protocol tests on and enforced)
//! and real Postfix consulting Debian's postgrey are judged exactly as the same Postfix without
//! the gate, with one connection more for postscreen and one retry round for greylisting; a
//! greylisting server that never lets the retry through is `relay-undetermined`, and the registry
//! keeps its earlier `open-relay` open (a real Postfix, and a scripted server on SQLite and on
//! PostgreSQL). Nothing leaves loopback.

#[path = "../registry/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use relayguard_registry::Store;
use relayguard_registry::store::{FindingFilter, FindingRow, FindingStatus};
use relayguard_testkit::report::{host, kinds, tests_of};
use relayguard_testkit::{Personality, Postfix, Postgrey, scanner_source_addr};
use serde_json::Value;

/// Runs `relayguard sweep` from the scanner's source address, recording into `database`, with
/// a 10 s command timeout and a 60 s host deadline unless `extra` sets them.
fn sweep(database: &str, extra: &[&str], targets: &[String]) -> Output {
    let source = scanner_source_addr().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_relayguard"));
    command
        .env("RELAYGUARD_DATABASE", database)
        .arg("sweep")
        .args(["--source", &source, "--rate", "0", "--no-progress"])
        // Gated and bare hosts are compared vector by vector: every vector runs.
        .arg("--all-vectors");
    for (option, default) in [("--command-timeout", "10"), ("--host-deadline", "60")] {
        if !extra.contains(&option) {
            command.args([option, default]);
        }
    }
    command
        .args(extra)
        .args(targets)
        .output()
        .expect("run relayguard")
}

/// A JSON sweep report.
fn sweep_json(database: &str, extra: &[&str], targets: &[String]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let out = sweep(database, &args, targets);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(std::string::ToString::to_string).collect()
}

/// (id, argument, verdict) of every test, in plan order.
fn verdicts(h: &Value) -> Vec<(String, String, String)> {
    h["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
            // Backscatter recipients and the second VRFY name are random: leave them out.
            let arg = s("argument");
            let arg = match (s("kind").as_str(), arg.split_once('@')) {
                ("backscatter", Some((_, domain))) => domain.to_string(),
                ("vrfy", _) => arg.split(" / ").next().unwrap_or_default().to_string(),
                _ => arg,
            };
            (s("id"), arg, s("verdict"))
        })
        .collect()
}

/// An accepted local-form vector the relay review discounted (the host also accepts unknown
/// users at the same domain).
fn discounted(t: &Value) -> bool {
    t["verdict"] == "inconclusive"
        && t["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("accepted, but the 250"))
}

/// The verdicts with the host's own name and address replaced, to compare two hosts.
fn neutral(h: &Value, pf: &Postfix) -> Vec<(String, String, String)> {
    verdicts(h)
        .into_iter()
        .map(|(id, arg, v)| {
            let arg = arg
                .replace(pf.hostname(), "HOST")
                .replace(&pf.addr().to_string(), "ADDR");
            // The relay-control recipient is random per run: `rg-` and 12 characters.
            let arg = match arg.find("rg-") {
                Some(i) if arg.len() >= i + 15 => {
                    format!("{}rg-RANDOM{}", &arg[..i], &arg[i + 15..])
                }
                _ => arg,
            };
            (id, arg, v)
        })
        .collect()
}

fn transcript(h: &Value) -> &Vec<Value> {
    h["transcript"]["lines"]
        .as_array()
        .expect("transcript lines")
}

/// The session numbers in a host's transcript.
fn sessions(h: &Value) -> BTreeSet<u64> {
    transcript(h)
        .iter()
        .map(|l| l["session"].as_u64().unwrap())
        .collect()
}

fn lines_of(h: &Value, session: u64) -> Vec<&Value> {
    transcript(h)
        .iter()
        .filter(|l| l["session"] == session)
        .collect()
}

fn notes(h: &Value) -> Vec<String> {
    h["notes"]
        .as_array()
        .map(|n| n.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// How many lines of the Postfix log contain `what`.
fn count(log: &str, what: &str) -> usize {
    count_all(log, &[what])
}

/// How many lines of the Postfix log contain all of `what`.
fn count_all(log: &str, what: &[&str]) -> usize {
    log.lines()
        .filter(|l| what.iter().all(|w| l.contains(w)))
        .count()
}

#[test]
fn postscreen_is_passed_as_a_legitimate_client_does_and_the_verdicts_are_the_real_servers() {
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::Closed);
    let bare_open = Postfix::start(Personality::OpenRelay);
    let bare_closed = Postfix::start(Personality::Closed);
    // AUTH offered in plaintext: the real smtpd's EHLO says so, postscreen's own does not.
    open.enable_sasl("alice", "secret");
    bare_open.enable_sasl("alice", "secret");
    let greet_wait = Duration::from_secs(3);
    open.enable_postscreen(greet_wait);
    closed.enable_postscreen(greet_wait);
    let all = [&open, &closed, &bare_open, &bare_closed];
    let targets: Vec<String> = all.iter().map(|p| p.addr().to_string()).collect();
    let db = relayguard_testkit::test_database();
    let doc = sweep_json(&db, &[], &targets);
    let source = scanner_source_addr();

    for (gated, bare, expected) in [
        (
            &open,
            &bare_open,
            set(&[
                "open-relay",
                "auth-before-tls",
                "vrfy-enabled",
                "no-starttls",
            ]),
        ),
        (&closed, &bare_closed, set(&["vrfy-enabled", "no-starttls"])),
    ] {
        let g = host(&doc, gated.addr());
        let b = host(&doc, bare.addr());
        assert_eq!(kinds(g), expected, "{g:#}");
        assert_eq!(kinds(b), expected, "{b:#}");
        // What the server offers is the real smtpd's EHLO, seen past the gate.
        assert_eq!(g["smtp"]["ehlo"], b["smtp"]["ehlo"]);
        assert!(
            g["smtp"]["ehlo"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l == "PIPELINING"),
            "{g:#}"
        );
        // Exactly the verdicts of the same Postfix without postscreen, test for test.
        assert_eq!(neutral(g, gated), neutral(b, bare));
        let relay: Vec<&Value> = tests_of(g, "relay").collect();
        let want = if expected.contains("open-relay") {
            "accepted"
        } else {
            "refused"
        };
        // (An open relay's local forms are accepted too, but discounted: it also accepts
        // unknown users at its own domain, so the 250 cannot tell relaying from delivery.)
        assert!(
            relay.len() >= 20 && relay.iter().all(|t| t["verdict"] == want || discounted(t)),
            "{relay:#?}"
        );
        // No verdict comes from the deferred first session.
        assert!(
            g["tests"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["session"] != 1),
            "{g:#}"
        );
        assert_eq!(
            notes(g),
            [
                "reverse DNS not checked: resolvers answer localhost for loopback addresses",
                "a gate in front of the server (as postscreen) greeted in stages and deferred 1 session(s) with 450 4.3.2: their tests ran once more in a fresh session",
            ],
            "{g:#}"
        );
        assert!(!notes(b).iter().any(|n| n.contains("gate")), "{b:#}");

        // Session 1: the staged greeting is read whole before anything is said, the first RCPT
        // is deferred, and the session is left at once.
        let first = lines_of(g, 1);
        let text: Vec<&str> = first.iter().map(|l| l["text"].as_str().unwrap()).collect();
        let final_220 = text
            .iter()
            .position(|t| t.starts_with("220 "))
            .expect("a final 220");
        assert!(text[final_220 - 1].starts_with("220-"), "{text:#?}");
        let first_command = first
            .iter()
            .position(|l| l["dir"] == "client")
            .expect("a command");
        assert!(first_command > final_220, "{text:#?}");
        assert!(
            first[final_220]["ms"].as_u64().unwrap() >= greet_wait.as_millis() as u64 - 100,
            "the final 220 came after postscreen's greet wait: {text:#?}"
        );
        let rcpts: Vec<usize> = (0..text.len())
            .filter(|&i| text[i].starts_with("RCPT TO"))
            .collect();
        assert_eq!(rcpts.len(), 1, "{text:#?}");
        assert!(text[rcpts[0] + 1].starts_with("450 4.3.2"), "{text:#?}");
        // The envelope's own RSET, then QUIT.
        assert_eq!(
            &text[rcpts[0] + 2..],
            ["RSET", "250 2.0.0 Ok", "QUIT", "221 2.0.0 Bye"]
        );

        // One connection more than without postscreen: the deferred session, and no other.
        assert_eq!(sessions(g).len(), sessions(b).len() + 1);
        let log = gated.log();
        let client = format!("[{source}]");
        assert_eq!(
            count(&log, &format!("CONNECT from {client}")),
            // Discovery's connection, then every session.
            1 + sessions(g).len(),
            "{log}"
        );
        assert_eq!(count(&log, &format!("PASS NEW {client}")), 1, "{log}");
        // postscreen deferred one RCPT; smtpd answered all the others.
        assert_eq!(
            count_all(&log, &["postfix/postscreen[", "NOQUEUE: reject: RCPT"]),
            1,
            "{log}"
        );
        // Nothing talked before the final 220, nothing pipelined, nothing odd was sent.
        for violation in [
            "PREGREET",
            "COMMAND PIPELINING",
            "NON-SMTP COMMAND",
            "BARE NEWLINE",
            "COMMAND COUNT LIMIT",
            "COMMAND TIME LIMIT",
        ] {
            assert_eq!(count(&log, violation), 0, "{violation}: {log}");
        }
        // Discovery connects and closes before the greeting, which postscreen logs as a
        // hang-up "in tests before SMTP handshake": that, once, and no other hang-up.
        assert_eq!(count(&log, "HANGUP after"), 1, "{log}");
        assert_eq!(
            count(&log, "in tests before SMTP handshake"),
            1,
            "only discovery's connect-and-close: {log}"
        );
    }
}

/// The whole seconds N in "greylisted, retried after N s".
fn retried_after(note: &str) -> Option<u64> {
    note.strip_prefix("greylisted, retried after ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn greylisted_tests_are_retried_with_the_same_envelope_without_holding_up_other_hosts() {
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::Closed);
    let bare_open = Postfix::start(Personality::OpenRelay);
    let bare_closed = Postfix::start(Personality::Closed);
    // One postgrey each: the probes offer the same triplets to every host.
    let (grey_open, grey_closed) = (
        Postgrey::start(Duration::from_secs(2)),
        Postgrey::start(Duration::from_secs(2)),
    );
    open.add_policy_service(grey_open.addr());
    closed.add_policy_service(grey_closed.addr());
    let all = [&open, &closed, &bare_open, &bare_closed];
    let targets: Vec<String> = all.iter().map(|p| p.addr().to_string()).collect();
    let db = relayguard_testkit::test_database();
    // One host audited at a time: only a host that gives its slot back while it waits lets the
    // others be audited meanwhile.
    let out = sweep(
        &db,
        &[
            "--format",
            "jsonl",
            "--greylist-wait",
            "3",
            "--audit-concurrency",
            "1",
        ],
        &targets,
    );
    let hosts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("one JSON host per line"))
        .filter(|v: &Value| v.get("address").is_some())
        .collect();
    assert_eq!(hosts.len(), 4, "{hosts:#?}");
    let order: Vec<&str> = hosts
        .iter()
        .map(|h| h["address"].as_str().unwrap())
        .collect();
    let (o, c) = (open.addr().to_string(), closed.addr().to_string());
    assert_eq!(
        order[2..].iter().copied().collect::<BTreeSet<_>>(),
        [o.as_str(), c.as_str()].into_iter().collect(),
        "the bare hosts were audited while the greylisted ones waited: {order:?}"
    );
    let doc = serde_json::json!({ "hosts": hosts });
    let source = scanner_source_addr();

    for (gated, bare, expected) in [
        (
            &open,
            &bare_open,
            set(&["open-relay", "vrfy-enabled", "no-starttls"]),
        ),
        (&closed, &bare_closed, set(&["vrfy-enabled", "no-starttls"])),
    ] {
        let g = host(&doc, gated.addr());
        let b = host(&doc, bare.addr());
        assert_eq!(kinds(g), expected, "{g:#}");
        assert_eq!(neutral(g, gated), neutral(b, bare));
        let retried: Vec<&Value> = g["tests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| {
                t["note"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("greylisted"))
            })
            .collect();
        for t in &retried {
            let note = t["note"].as_str().unwrap();
            let after = retried_after(note).unwrap_or_else(|| panic!("{note}"));
            assert!((3..10).contains(&after), "{note}");
            assert_ne!(t["verdict"], "inconclusive", "{t:#}");
        }
        let relay: Vec<&Value> = tests_of(g, "relay").collect();
        if expected.contains("open-relay") {
            // Postgrey deferred every relay test and let every retry through.
            // (Local forms discounted as on any open relay that accepts unknown local users.)
            assert!(
                relay.iter().all(|t| (t["verdict"] == "accepted"
                    && t["note"]
                        .as_str()
                        .is_some_and(|n| retried_after(n).is_some()))
                    || discounted(t)),
                "{relay:#?}"
            );
            // The evidence keeps the deferral before the acceptance.
            let evidence = &g["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["kind"] == "open-relay")
                .unwrap()["evidence"]["transcript"];
            let text: Vec<&str> = evidence
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["text"].as_str().unwrap())
                .collect();
            assert!(text.iter().any(|t| t.contains("Greylisted")), "{text:#?}");
        } else {
            // A closed relay refuses before the greylisting policy is asked.
            assert!(
                relay.iter().all(|t| t["verdict"] == "refused"
                    && !t["note"].as_str().is_some_and(|n| n.contains("greylist"))),
                "{relay:#?}"
            );
        }
        assert!(!retried.is_empty());
        // The discounted local forms were retried too (their note now says why they do not
        // count); the host note counts them.
        let deferred = retried.len() + tests_of(g, "relay").filter(|t| discounted(t)).count();
        assert_eq!(
            notes(g)[1],
            format!(
                "greylisting: {deferred} tests were deferred and retried with the same envelope after 3 s; {deferred} got a definite answer"
            )
        );
        // The retries took fresh sessions, as few as hold them (8 tests each), and nothing else.
        assert_eq!(
            sessions(g).len(),
            sessions(b).len() + retried.len().div_ceil(8),
            "{g:#}"
        );
        assert_eq!(
            count(&gated.log(), &format!("]: connect from unknown[{source}]")),
            1 + sessions(g).len()
        );
        assert!(g["elapsed_ms"].as_u64().unwrap() >= 3000);
    }
}

#[test]
fn the_host_deadline_moves_for_a_greylisting_retry_only() {
    let open = Postfix::start(Personality::OpenRelay);
    let bare = Postfix::start(Personality::Closed);
    let grey = Postgrey::start(Duration::from_secs(2));
    open.add_policy_service(grey.addr());
    let targets = vec![open.addr().to_string(), bare.addr().to_string()];
    let db = relayguard_testkit::test_database();
    // The retry comes after the host deadline would have ended the audit.
    let doc = sweep_json(
        &db,
        &[
            "--host-deadline",
            "3",
            "--command-timeout",
            "2",
            "--greylist-wait",
            "4",
        ],
        &targets,
    );
    let g = host(&doc, open.addr());
    assert_eq!(
        kinds(g),
        set(&["open-relay", "vrfy-enabled", "no-starttls"]),
        "{g:#}"
    );
    // Every vector was greylisted and retried: the plain ones are accepted with the retry in
    // their note; the local forms, accepted too, are discounted because this host also accepts
    // unknown users at its own domain.
    let retried = |t: &Value| {
        t["note"]
            .as_str()
            .and_then(retried_after)
            .is_some_and(|n| n >= 4)
    };
    assert!(
        ["null-sender", "external-sender"]
            .iter()
            .all(|id| tests_of(g, "relay")
                .any(|t| t["id"] == *id && t["verdict"] == "accepted" && retried(t))),
        "{g:#}"
    );
    assert!(
        tests_of(g, "relay").all(|t| (t["verdict"] == "accepted" && retried(t))
            || (t["verdict"] == "inconclusive"
                && t["note"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("accepted, but the 250")))),
        "{g:#}"
    );
    // Moved as far as the retry needed: the wait, then about as long as the first round took
    // and one command timeout.
    let elapsed = g["elapsed_ms"].as_u64().unwrap();
    assert!((4000..9000).contains(&elapsed), "{elapsed} ms");
    let b = host(&doc, bare.addr());
    assert_eq!(kinds(b), set(&["vrfy-enabled", "no-starttls"]), "{b:#}");
    assert!(b["elapsed_ms"].as_u64().unwrap() < 3500, "{b:#}");
}

/// (kind, last sweep) of the open findings at `addr`.
async fn open_findings(store: &Store, addr: &str) -> Vec<FindingRow> {
    let mut rows = store
        .list_findings(&FindingFilter {
            status: Some(FindingStatus::Open),
            address: Some(addr.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    rows.sort_by(|a, b| a.kind.cmp(&b.kind));
    rows
}

fn kinds_of(rows: &[FindingRow]) -> Vec<&str> {
    rows.iter().map(|r| r.kind.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_relay_that_starts_greylisting_stays_open_in_the_registry() {
    let relay = Postfix::start(Personality::OpenRelay);
    let t = common::sqlite().await;
    let addr = relay.addr().to_string();
    let targets = vec![addr.clone()];
    let first = {
        let (db, targets) = (t.url.clone(), targets.clone());
        tokio::task::spawn_blocking(move || sweep_json(&db, &[], &targets))
            .await
            .unwrap()
    };
    assert!(kinds(host(&first, &addr)).contains("open-relay"));
    let before = open_findings(&t.store, &addr).await;
    assert_eq!(
        kinds_of(&before),
        [
            "no-starttls",
            "open-relay",
            "unregistered-mta",
            "vrfy-enabled"
        ]
    );

    // Now behind postgrey with a delay longer than the sweep waits: not judged this time.
    let grey = Postgrey::start(Duration::from_secs(120));
    relay.add_policy_service(grey.addr());
    let second = {
        let (db, targets) = (t.url.clone(), targets.clone());
        tokio::task::spawn_blocking(move || sweep_json(&db, &["--greylist-wait", "1"], &targets))
            .await
            .unwrap()
    };
    let h = host(&second, &addr);
    assert_eq!(
        kinds(h),
        set(&["relay-undetermined", "no-starttls"]),
        "{h:#}"
    );
    for test in tests_of(h, "relay") {
        assert_eq!(test["verdict"], "inconclusive");
        let note = test["note"].as_str().unwrap();
        assert!(
            note.starts_with("greylisted, and again when retried after "),
            "{note}"
        );
    }
    let undetermined = h["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "relay-undetermined")
        .unwrap();
    let summary = undetermined["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("relay verdict not reached this time: all ")
            && summary
                .contains("relay tests inconclusive: greylisted, and again when retried after"),
        "{summary}"
    );
    assert!(
        notes(h)
            .iter()
            .any(|n| n.starts_with("relay verdict not reached this time (all ")),
        "{h:#}"
    );

    let after = open_findings(&t.store, &addr).await;
    assert_eq!(
        kinds_of(&after),
        [
            "no-starttls",
            "open-relay",
            "relay-undetermined",
            "unregistered-mta",
            "vrfy-enabled"
        ]
    );
    let sweeps = t.store.list_sweeps().await.unwrap();
    let last = sweeps.iter().map(|s| s.id).max().unwrap();
    for kind in ["open-relay", "vrfy-enabled"] {
        let (b, a) = (
            before.iter().find(|f| f.kind == kind).unwrap(),
            after.iter().find(|f| f.kind == kind).unwrap(),
        );
        // Held: not seen again, last seen where it was.
        assert_eq!(
            (a.last_seen, a.last_sweep),
            (b.last_seen, b.last_sweep),
            "{kind}"
        );
        assert_ne!(a.last_sweep, Some(last));
    }
    let notes = t.store.get_sweep(last).await.unwrap().unwrap().notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("open-relay") && n.contains("stays open")),
        "{notes:#?}"
    );
}

/// What the scripted server answers to RCPT.
const OPEN: u8 = 0;
const GREYLISTING: u8 = 1;
const CLOSED: u8 = 2;
const GATE_SHUT: u8 = 3;

/// A scripted SMTP server on a loopback port, in one of four modes: an open relay that
/// accepts every recipient, a greylisting one that defers every RCPT with
/// `451 4.7.1 Greylisted, try again later` however often it is retried, a closed one, or a gate
/// that never opens (a postscreen-like staged greeting, then `450 4.3.2` to every RCPT of every
/// session).
struct Scripted {
    port: u16,
    mode: Arc<AtomicU8>,
    connections: Arc<AtomicUsize>,
}

impl Scripted {
    fn start() -> Scripted {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(OPEN));
        let connections = Arc::new(AtomicUsize::new(0));
        let (m, n) = (mode.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                n.fetch_add(1, Ordering::Relaxed);
                let m = m.clone();
                std::thread::spawn(move || serve(stream, m.load(Ordering::Relaxed)));
            }
        });
        Scripted {
            port,
            mode,
            connections,
        }
    }
}

fn serve(stream: TcpStream, mode: u8) {
    let mut out = stream.try_clone().unwrap();
    if mode == GATE_SHUT {
        let _ = out.write_all(b"220-mx.scripted.test ESMTP\r\n");
        std::thread::sleep(Duration::from_millis(1200));
    }
    let _ = out.write_all(b"220 mx.scripted.test ESMTP\r\n");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let cmd = line.to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            b"250-mx.scripted.test\r\n250 8BITMIME\r\n"
        } else if cmd.starts_with("RCPT") {
            match mode {
                OPEN => b"250 2.1.5 Ok\r\n",
                GREYLISTING => b"451 4.7.1 Greylisted, try again later\r\n",
                GATE_SHUT => b"450 4.3.2 Service currently unavailable\r\n",
                _ if cmd.contains("MX.SCRIPTED.TEST") || cmd.contains("[127.0.0.1]") => {
                    b"550 5.1.1 User unknown\r\n"
                }
                _ => b"554 5.7.1 Relay access denied\r\n",
            }
        } else if cmd.starts_with("VRFY") || cmd.starts_with("EXPN") {
            b"502 5.5.1 Not implemented\r\n"
        } else if cmd.starts_with("QUIT") {
            let _ = out.write_all(b"221 2.0.0 Bye\r\n");
            return;
        } else {
            b"250 2.0.0 Ok\r\n"
        };
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

/// The scripted server swept three times into one registry: recorded as an open relay and
/// backscatter source, then greylisting every RCPT (held open: not judged), then closed
/// (resolved).
async fn a_greylisting_sweep_resolves_nothing(kind: common::Kind) {
    let t = common::open(kind).await;
    let server = Scripted::start();
    let port = server.port.to_string();
    let run = |extra: Vec<&'static str>| {
        let (db, port) = (t.url.clone(), port.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["--ports", port.as_str()];
            args.extend(extra);
            // The scanner's usual source address is outside mynetworks of the Postfix tests;
            // this server trusts nobody, so any source does.
            sweep_json(&db, &args, &["127.0.0.1".to_string()])
        })
    };
    let addr = "127.0.0.1";

    run(vec![]).await.unwrap();
    let before = open_findings(&t.store, addr).await;
    assert_eq!(
        kinds_of(&before),
        [
            "backscatter-source",
            "no-starttls",
            "open-relay",
            "unregistered-mta"
        ]
    );

    server.mode.store(GREYLISTING, Ordering::Relaxed);
    let connections = server.connections.load(Ordering::Relaxed);
    let doc = run(vec!["--greylist-wait", "1"]).await.unwrap();
    let h = &doc["hosts"][0];
    assert_eq!(
        kinds(h),
        set(&["relay-undetermined", "no-starttls"]),
        "{h:#}"
    );
    // The retry round took as many sessions as the tests needed, and no more.
    let retried = h["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("greylisted, and again when retried after 1 s"))
        })
        .count();
    assert!(retried >= 20, "{h:#}");
    assert_eq!(
        server.connections.load(Ordering::Relaxed) - connections,
        1 + sessions(h).len()
    );
    let after = open_findings(&t.store, addr).await;
    assert_eq!(
        kinds_of(&after),
        [
            "backscatter-source",
            "no-starttls",
            "open-relay",
            "relay-undetermined",
            "unregistered-mta"
        ]
    );
    for kind in ["open-relay", "backscatter-source"] {
        let (b, a) = (
            before.iter().find(|f| f.kind == kind).unwrap(),
            after.iter().find(|f| f.kind == kind).unwrap(),
        );
        assert_eq!(
            (a.last_seen, a.last_sweep),
            (b.last_seen, b.last_sweep),
            "{kind}"
        );
    }
    let second = t
        .store
        .list_sweeps()
        .await
        .unwrap()
        .into_iter()
        .max_by_key(|s| s.id)
        .unwrap();
    for kind in ["open-relay", "backscatter-source"] {
        assert!(
            second
                .notes
                .iter()
                .any(|n| n.contains(kind) && n.contains("stays open") && n.contains("greylisted")),
            "{kind}: {:#?}",
            second.notes
        );
    }

    server.mode.store(CLOSED, Ordering::Relaxed);
    let doc = run(vec!["--greylist-wait", "1"]).await.unwrap();
    assert_eq!(kinds(&doc["hosts"][0]), set(&["no-starttls"]));
    assert_eq!(
        kinds_of(&open_findings(&t.store, addr).await),
        ["no-starttls", "unregistered-mta"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_greylisting_sweep_resolves_nothing_sqlite() {
    a_greylisting_sweep_resolves_nothing(common::Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_greylisting_sweep_resolves_nothing_postgres() {
    a_greylisting_sweep_resolves_nothing(common::Kind::Postgres).await;
}

#[test]
fn a_gate_that_never_opens_is_knocked_on_twice_and_leaves_the_relay_undetermined() {
    let server = Scripted::start();
    server.mode.store(GATE_SHUT, Ordering::Relaxed);
    let port = server.port.to_string();
    let db = relayguard_testkit::test_database();
    let doc = sweep_json(&db, &["--ports", &port], &["127.0.0.1".to_string()]);
    let h = &doc["hosts"][0];
    assert_eq!(
        kinds(h),
        set(&["relay-undetermined", "no-starttls"]),
        "{h:#}"
    );
    // Discovery, the first session, and the one reconnect: the other sessions never opened.
    assert_eq!(server.connections.load(Ordering::Relaxed), 3, "{h:#}");
    assert_eq!(sessions(h).len(), 2, "{h:#}");
    let deferred = "deferred by a gate in front of the server (450 4.3.2 after a staged greeting) in this session and again after reconnecting";
    let shut = "not run: the gate in front of the server (450 4.3.2 after a staged greeting, as postscreen defers a new client) did not open on reconnecting";
    let tests = h["tests"].as_array().unwrap();
    assert!(
        tests.iter().all(|t| t["verdict"] == "inconclusive"
            && (t["note"] == deferred || t["note"] == shut)),
        "{tests:#?}"
    );
    let first = tests.iter().filter(|t| t["note"] == deferred).count();
    let relay = tests_of(h, "relay").count();
    let summary = h["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "relay-undetermined")
        .unwrap()["summary"]
        .as_str()
        .unwrap();
    assert!(
        summary.starts_with(&format!(
            "relay verdict not reached this time: all {relay} relay tests inconclusive: {shut} ("
        )),
        "{summary}"
    );
    assert!(first >= 1 && first < tests.len(), "{tests:#?}");
    assert!(
        notes(h)
            .iter()
            .any(|n| n.starts_with("relay verdict not reached this time (all ")),
        "{h:#}"
    );
}
