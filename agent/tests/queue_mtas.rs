//! Queue health of Exim, OpenSMTPD and Sendmail through the report, with their commands
//! replayed from what the real programs printed (tests/fixtures/queue/README.md says how each
//! was recorded) and their real logs at the default places in a root.

mod common;

use std::fs;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::TempRoot;
use relayguard_agent::command::{CommandOutput, CommandRunner};
use relayguard_agent::report::{self, QueueSources};
use relayguard_agent::root::Root;
use relayguard_core::agent_report::{Mta, QueueHealth};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/queue");

fn fixture(name: &str) -> String {
    fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// Answers exactly the given commands with recorded output and records every call.
#[derive(Debug, Default)]
struct Replay {
    answers: Vec<(String, CommandOutput)>,
    calls: Mutex<Vec<String>>,
}

impl Replay {
    fn answer(mut self, command: &str, stdout: &str, success: bool) -> Self {
        self.answers.push((
            command.to_string(),
            CommandOutput {
                success,
                stdout: if success {
                    stdout.into()
                } else {
                    String::new()
                },
                stderr: if success {
                    String::new()
                } else {
                    stdout.into()
                },
            },
        ));
        self
    }
}

impl CommandRunner for Replay {
    fn run(&self, program: &str, args: &[&str]) -> relayguard_agent::error::Result<CommandOutput> {
        let cmd = format!("{program} {}", args.join(" "));
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(cmd.clone());
        let found = self.answers.iter().find(|(c, _)| *c == cmd);
        Ok(found.map(|(_, o)| o.clone()).unwrap_or(CommandOutput {
            success: false,
            stdout: String::new(),
            stderr: format!("not recorded: {cmd}"),
        }))
    }
}

/// A root holding `programs` (empty files) and the log `log` at `log_path`.
fn root_with(name: &str, programs: &[&str], log_path: &str, log: &str) -> TempRoot {
    let r = TempRoot::new(name);
    for p in programs {
        r.write(p, "", 0o755);
    }
    r.write(log_path, log, 0o640);
    r
}

/// Two reports: the first sets the log baseline, the second counts what was appended.
fn two_reports(r: &TempRoot, replay: Arc<Replay>, log_path: &str, appended: &str) -> QueueHealth {
    let root = Root::with_runner(&r.0, replay);
    let src = QueueSources {
        mail_log: None,
        state_dir: r.p("/var/lib/relayguard-agent"),
    };
    let first = report::build(&root, relayguard_agent::check(&root).0, Some(&src))
        .unwrap()
        .queue
        .expect("queue health");
    assert_eq!(
        first.bounces_since_last, None,
        "the first report is the baseline"
    );
    fs::OpenOptions::new()
        .append(true)
        .open(r.p(log_path))
        .unwrap()
        .write_all(appended.as_bytes())
        .unwrap();
    report::build(&root, relayguard_agent::check(&root).0, Some(&src))
        .unwrap()
        .queue
        .expect("queue health")
}

#[test]
fn exim_queue_and_main_log() {
    let log = fixture("exim-mainlog");
    let r = root_with(
        "queue-exim",
        &["/usr/sbin/exim4"],
        "/var/log/exim4/mainlog",
        &log,
    );
    // A syslog with Postfix-style bounces must not be read for Exim.
    r.write(
        "/var/log/mail.log",
        "x postfix/bounce[1]: A: sender non-delivery notification: B\n",
        0o640,
    );
    let replay = Arc::new(
        Replay::default()
            .answer("/usr/sbin/exim4 -bpc", &fixture("exim-bpc.txt"), true)
            .answer("/usr/sbin/exim4 -bp", &fixture("exim-bp.txt"), true),
    );
    let q = two_reports(&r, replay.clone(), "/var/log/exim4/mainlog", &log);
    assert_eq!(q.mta, Mta::Exim);
    assert_eq!((q.messages, q.null_sender), (4, 2));
    assert_eq!(q.oldest_age_secs, Some(5 * 86400));
    // The whole real log again: its one bounce Exim wrote (R=), not the <> it received.
    assert_eq!(q.bounces_since_last, Some(1));
    assert!(
        replay
            .calls
            .lock()
            .unwrap()
            .iter()
            .all(|c| c.starts_with("/usr/sbin/exim4 -bp")),
        "{:?}",
        replay.calls
    );
}

#[test]
fn opensmtpd_queue_and_syslog() {
    let log = fixture("opensmtpd-maillog");
    let r = root_with(
        "queue-smtpd",
        &["/usr/sbin/smtpctl"],
        "/var/log/mail.log",
        "",
    );
    let replay = Arc::new(Replay::default().answer(
        "/usr/sbin/smtpctl show queue",
        &fixture("smtpctl-show-queue.txt"),
        true,
    ));
    let q = two_reports(&r, replay, "/var/log/mail.log", &log);
    assert_eq!(q.mta, Mta::Opensmtpd);
    assert_eq!(q.source, "smtpctl show queue");
    assert_eq!((q.messages, q.null_sender), (4, 3));
    assert_eq!(q.bounces_since_last, Some(2));
}

#[test]
fn sendmail_queue_and_maillog() {
    let log = fixture("sendmail-maillog");
    // Debian logs to mail.log; without it, maillog (Red Hat, the BSDs) is read.
    let r = root_with(
        "queue-sendmail",
        &["/usr/libexec/sendmail/sendmail", "/usr/sbin/sendmail"],
        "/var/log/maillog",
        "",
    );
    let replay = Arc::new(Replay::default().answer(
        "/usr/libexec/sendmail/sendmail -bp -OTimeZoneSpec=UTC0",
        &fixture("sendmail-bp.txt"),
        true,
    ));
    let q = two_reports(&r, replay, "/var/log/maillog", &log);
    assert_eq!(q.mta, Mta::Sendmail);
    assert_eq!((q.messages, q.null_sender), (4, 2));
    let oldest = q.oldest_age_secs.expect("an oldest message");
    // Moved back 40 days when recorded, and older every day since.
    assert!(oldest >= 40 * 86400, "{oldest}");
    assert_eq!(q.bounces_since_last, Some(1));
}

#[test]
fn postfix_first_and_failures_are_errors() {
    // Postfix installs a sendmail too; with postqueue present, Postfix is read.
    let r = root_with(
        "queue-order",
        &["/usr/sbin/postqueue", "/usr/sbin/exim4"],
        "/var/log/mail.log",
        "",
    );
    let replay = Arc::new(Replay::default().answer("/usr/sbin/postqueue -j", "", true));
    let root = Root::with_runner(&r.0, replay);
    let q = relayguard_agent::queue::gather(&root, 1000)
        .unwrap()
        .unwrap();
    assert_eq!((q.mta, q.messages), (Mta::Postfix, 0));

    // A listing command that fails is an error with its message, not an empty queue.
    let r = root_with(
        "queue-fail",
        &["/usr/sbin/smtpctl"],
        "/var/log/mail.log",
        "",
    );
    let replay = Arc::new(Replay::default().answer(
        "/usr/sbin/smtpctl show queue",
        "smtpctl: this program must be setgid opensmtpq\n",
        false,
    ));
    let root = Root::with_runner(&r.0, replay);
    let e = relayguard_agent::queue::gather(&root, 1000).unwrap_err();
    assert!(e.to_string().contains("must be setgid"), "{e}");

    // No MTA's listing command: no queue health.
    let r = root_with(
        "queue-none",
        &["/usr/sbin/sendmail"],
        "/var/log/mail.log",
        "",
    );
    let root = Root::with_runner(&r.0, Arc::new(Replay::default()));
    assert!(
        relayguard_agent::queue::gather(&root, 1000)
            .unwrap()
            .is_none()
    );
}
