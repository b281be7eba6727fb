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

/// A free port on the scanner's own loopback address, for the confirmation sink.
fn sink_addr() -> String {
    let probe = std::net::TcpListener::bind((scanner_source_addr(), 0)).expect("bind a port");
    probe.local_addr().unwrap().to_string()
}

/// The transcript lines of a host entry that are exactly `text`.
fn said(h: &Value, text: &str) -> usize {
    h["transcript"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["dir"] == "client" && l["text"] == text)
        .count()
}

#[test]
fn confirm_proves_relays_by_delivery_and_leaves_the_rest_suspected() {
    let sink = sink_addr();
    let sink_ip = scanner_source_addr();
    let sink_route = format!("smtp:[{sink_ip}]:{}", sink.rsplit(':').next().unwrap());
    // A two-hop relay: the catch-all backup MX forwards campus.test to the primary, which
    // resolves user%ext@campus.test (and the other routed forms) to user@ext and relays it,
    // here to the sink: the only route it has.
    let backup = Postfix::start(Personality::UntrustedRouting);
    let primary = Postfix::start(Personality::Closed);
    // The primary trusts its backup MX.
    primary.route_by_smtp(&[
        &format!("mynetworks = 127.0.0.1/32, {}/32", backup.addr()),
        "mydestination = $myhostname, localhost, campus.test",
        &format!("default_transport = {sink_route}"),
        &format!("relay_transport = {sink_route}"),
    ]);
    backup.route_by_smtp(&[
        &format!("relay_transport = smtp:[{}]:25", primary.addr()),
        &format!("smtp_bind_address = {}", backup.addr()),
    ]);
    // A plain open relay whose only route is the sink.
    let open = Postfix::start(Personality::OpenRelay);
    open.route_by_smtp(&[
        &format!("default_transport = {sink_route}"),
        &format!("relay_transport = {sink_route}"),
    ]);
    // A catch-all that delivers every local address locally: no percent hack, no bang paths,
    // so user%ext@itself is the local user "user%ext" (smtpd lets the routing operators through
    // only with allow_untrusted_routing). It takes the message and never sends it to ext.
    let catch_all = Postfix::start(Personality::Backscatter);
    catch_all.reconfigure(&[
        "allow_percent_hack = no",
        "swap_bangpath = no",
        "allow_untrusted_routing = yes",
    ]);
    let closed = Postfix::start(Personality::Closed);
    let catcher = MailCatcher::start();

    let all = [&backup, &open, &catch_all, &closed];
    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
        .args(sweep_args())
        .args(["--source", &sink_ip.to_string()])
        .args(["--confirm", "--confirm-sink", &sink, "--confirm-wait", "15"])
        .args(all.map(|p| p.addr().to_string()))
        .arg(catcher.addr.ip().to_string())
        .output()
        .expect("run relayguard");
    let doc = parse(out);
    // The backup MX: confirmed through each routed form it was sent, at most three messages.
    let h = host(&doc, backup.addr());
    let k = kinds(h);
    assert!(
        k.contains("open-relay") && !k.contains("relay-suspected"),
        "{k:?}: {:#}",
        h["findings"]
    );
    let relay = finding(h, "open-relay");
    assert_eq!(relay["evidence"]["relay_strength"], "delivered", "{relay}");
    let sent = said(h, "DATA");
    assert!((1..=3).contains(&sent), "{sent} messages");
    let tests: Vec<&str> = relay["evidence"]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tests.len(), sent, "every form sent arrived: {tests:?}");
    // The relay path: the sink saw the primary's Received header over the backup's.
    let path: Vec<&str> = relay["evidence"]["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["text"].as_str())
        .filter(|t| t.starts_with("sink: Received:"))
        .collect();
    assert!(
        path.iter().any(|l| l.contains(primary.hostname()))
            && path.iter().any(|l| l.contains(backup.hostname())),
        "{path:#?}"
    );
    assert!(primary.log().contains("status=sent"), "{}", primary.log());

    // The plain open relay: one message, delivered.
    let h = host(&doc, open.addr());
    assert_eq!(said(h, "DATA"), 1);
    assert_eq!(
        finding(h, "open-relay")["evidence"]["relay_strength"],
        "delivered"
    );

    // The local catch-all took the message and delivered it locally: still only suspected.
    let h = host(&doc, catch_all.addr());
    let k = kinds(h);
    assert!(
        k.contains("relay-suspected") && !k.contains("open-relay"),
        "{k:?}"
    );
    assert!(said(h, "DATA") >= 1);
    let summary = finding(h, "relay-suspected")["summary"].as_str().unwrap();
    assert!(
        summary.contains("accepted, not delivered within 15 s"),
        "{summary}"
    );
    assert!(catch_all.log().contains("status=sent"), "delivered locally");

    // A mail catcher takes anything, even a plainly external recipient, and delivers nothing:
    // with --confirm, suspected rather than open.
    let h = host(&doc, catcher.addr.ip());
    let k = kinds(h);
    assert!(
        k.contains("relay-suspected") && !k.contains("open-relay"),
        "{k:?}"
    );
    assert_eq!(said(h, "DATA"), 1, "one message for the plain relay");
    assert_eq!(catcher.messages(), 1);
    let f = finding(h, "relay-suspected");
    assert_eq!(f["severity"], "medium");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("accepted, not delivered within 15 s"),
        "{f}"
    );

    // The closed host was never sent DATA: its own log shows no DATA command in any session.
    let h = host(&doc, closed.addr());
    assert_eq!(said(h, "DATA"), 0);
    let log = closed.log();
    assert!(log.contains("disconnect from"), "{log}");
    assert!(!log.contains(" data="), "{log}");
}

/// A scripted accept-everything, deliver-nothing SMTP server on port 25 of its own loopback
/// address (a developer mail catcher): 250 to every command, 354 to DATA, and the message
/// counted and dropped.
struct MailCatcher {
    addr: std::net::SocketAddr,
    messages: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl MailCatcher {
    fn start() -> MailCatcher {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.88.0.25:25").expect("bind 127.88.0.25:25");
        let messages = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = messages.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counted = counted.clone();
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    let mut lines = BufReader::new(stream);
                    let _ = out.write_all(b"220 catcher.campus.test ESMTP\r\n");
                    let mut line = String::new();
                    while lines.read_line(&mut line).unwrap_or(0) > 0 {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-catcher.campus.test\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                let _ = out.write_all(b"354 go ahead\r\n");
                                line.clear();
                                while lines.read_line(&mut line).unwrap_or(0) > 0
                                    && line.trim_end() != "."
                                {
                                    line.clear();
                                }
                                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                b"250 2.0.0 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = out.write_all(b"221 bye\r\n");
                                break;
                            }
                            _ => b"250 2.0.0 Ok\r\n",
                        };
                        if out.write_all(reply).is_err() {
                            break;
                        }
                        line.clear();
                    }
                });
            }
        });
        MailCatcher {
            addr: "127.88.0.25:25".parse().unwrap(),
            messages,
        }
    }

    fn messages(&self) -> usize {
        self.messages.load(std::sync::atomic::Ordering::SeqCst)
    }
}
