//! Queue health from a real Postfix on loopback that holds its mail: its only transport
//! (`discard`, as testkit configures it) is in `defer_transports`, so the queue manager defers
//! every message and they sit in a real deferred queue; nothing is sent anywhere. `postqueue -j` finds the instance through `MAIL_CONFIG`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use relayguard_core::agent_report::{Mta, parse_report};
use relayguard_testkit::{Personality, Postfix};

/// Submits one message over SMTP, `from` possibly empty (the null sender of a bounce).
fn submit(pf: &Postfix, from: &str, to: &str) {
    let s = TcpStream::connect((pf.addr(), 25)).expect("connect to the test Postfix");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let expect = |code: &str, r: &mut BufReader<TcpStream>| loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect("220", &mut r);
    for (cmd, code) in [
        ("EHLO client.test".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
        (
            "Subject: queue test\r\n\r\nheld in the queue\r\n.".to_string(),
            "250",
        ),
        ("QUIT".to_string(), "221"),
    ] {
        write!(w, "{cmd}\r\n").unwrap();
        expect(code, &mut r);
    }
}

/// `postqueue -j` of the instance, run directly: the lines, one per message.
fn postqueue(config: &str) -> Vec<serde_json::Value> {
    let o = Command::new("postqueue")
        .arg("-j")
        .env("MAIL_CONFIG", config)
        .output()
        .expect("postqueue");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn report_counts_a_real_deferred_queue() {
    let pf = Postfix::start(Personality::Closed);
    pf.reconfigure(&["defer_transports = discard"]);
    // The instance's configuration directory (testkit: /tmp/relayguard-postfix/ADDR/etc).
    let config = format!("/tmp/relayguard-postfix/{}/etc", pf.addr());
    let to = format!("root@{}", pf.hostname());
    submit(&pf, "alice@campus.test", &to);
    submit(&pf, "bob@campus.test", &to);
    submit(&pf, "", &to);

    // Wait until the queue manager has tried and deferred all three.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let q = postqueue(&config);
        if q.len() == 3 && q.iter().all(|m| m["queue_name"] == "deferred") {
            break q;
        }
        assert!(
            Instant::now() < deadline,
            "queue never settled: {q:?}\n{}",
            pf.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // showq lists the null sender as MAILER-DAEMON.
    let bounces = listed
        .iter()
        .filter(|m| m["sender"] == "MAILER-DAEMON")
        .count();

    let o = run_env(&["report", "--queue"], &[("MAIL_CONFIG", &config)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep = parse_report(&stdout(&o)).unwrap();
    let q = rep.queue.expect("queue health");
    assert_eq!(q.mta, Mta::Postfix);
    assert_eq!(q.source, "postqueue -j");
    assert_eq!(q.messages, listed.len() as u64);
    assert_eq!(q.queues.get("deferred"), Some(&3));
    assert_eq!(q.null_sender, bounces as u64);
    assert_eq!(bounces, 1);
    let oldest = q.oldest_age_secs.expect("an oldest message");
    assert!(oldest < 120, "{oldest}");
    assert!(pf.log().contains("status=deferred"), "{}", pf.log());

    // Without --queue (and no registry saying mail server) the report has none.
    let o = run_env(&["report"], &[("MAIL_CONFIG", &config)]);
    assert!(parse_report(&stdout(&o)).unwrap().queue.is_none());
}

/// Counts the bounce lines in the instance's log, as an independent check.
fn bounce_lines(pf: &Postfix) -> usize {
    pf.log()
        .lines()
        .filter(|l| l.contains(": sender non-delivery notification: "))
        .count()
}

#[test]
fn bounces_since_the_last_report_come_from_the_mail_log() {
    let pf = Postfix::start(Personality::Closed);
    // Local mail fails for good (error(8)): every message becomes a bounce to its sender,
    // and the bounces wait in the deferred queue (their transport is deferred).
    pf.reconfigure(&[
        "local_transport = error:5.1.1 mailbox gone",
        "defer_transports = discard",
    ]);
    let config = format!("/tmp/relayguard-postfix/{}/etc", pf.addr());
    let log = format!("/tmp/relayguard-postfix/{}/maillog", pf.addr());
    let state = TempRoot::new("queue-state");
    let report = || {
        let o = run_env(
            &[
                "report",
                "--queue",
                "--mail-log",
                &log,
                "--state-dir",
                &state.arg(),
            ],
            &[("MAIL_CONFIG", &config)],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        parse_report(&stdout(&o))
            .unwrap()
            .queue
            .expect("queue health")
    };
    assert_eq!(
        report().bounces_since_last,
        None,
        "the first report is the baseline"
    );

    // Submitted locally (sendmail(1) into the maildrop, as cron mail is), so smtpd's checks
    // do not refuse the doomed recipient.
    let to = format!("root@{}", pf.hostname());
    for _ in 0..3 {
        let mut child = Command::new("sendmail")
            .args(["-f", "alice@campus.test", &to])
            .env("MAIL_CONFIG", &config)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sendmail");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"Subject: doomed\n\nto a mailbox that is gone\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while bounce_lines(&pf) < 3 {
        assert!(Instant::now() < deadline, "no bounces: {}", pf.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let q = report();
    assert_eq!(q.bounces_since_last, Some(bounce_lines(&pf) as u64));
    assert_eq!(q.bounces_since_last, Some(3));
    // The bounces themselves wait in the queue with the null sender.
    assert_eq!(q.null_sender, 3, "{q:?}");
    assert_eq!(
        report().bounces_since_last,
        Some(0),
        "each line is counted once"
    );
}
