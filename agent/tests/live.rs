//! Live facts on this Linux host: listeners on loopback addresses made by the test itself,
//! joined to their process through /proc/net/tcp inode -> /proc/PID/fd.

#![cfg(target_os = "linux")]

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use relayguard_core::agent_report::{CheckResult, FactKind, LiveFacts, Mta};

fn live_check() -> CheckResult {
    let o = run(&["check", "--format", "json"]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn listener_is_joined_to_its_process() {
    // An SMTP port on a private loopback address (no collision with real MTAs on 127.0.0.1).
    let l = TcpListener::bind("127.0.0.77:465")
        .expect("bind 127.0.0.77:465 (needs root or CAP_NET_BIND_SERVICE)");
    let c = live_check();
    assert_eq!(c.live, LiveFacts::Checked);
    let me = format!("held by pid {} ", std::process::id());
    let f = c
        .findings
        .iter()
        .find(|f| f.fact == FactKind::Listening && f.detail.starts_with("127.0.0.77:465"))
        .unwrap_or_else(|| panic!("listener not found: {:?}", c.findings));
    assert!(
        f.detail.contains("(loopback only)") && f.detail.contains(&me),
        "{f:?}"
    );
    assert_eq!(f.mta, Mta::Unknown, "the test binary is not an MTA");
    drop(l);
}

#[test]
fn process_named_like_postfix_master_is_running_and_listening() {
    // argv[0] rewritten to Postfix's master path (exe stays perl, from perl-base which every
    // Debian has): classified by argv[0], not by the 15-character comm.
    let script = "$s=IO::Socket::INET->new(LocalAddr=>q(127.0.0.78:587),Listen=>5,ReuseAddr=>1) or die qq(bind: $!); $|=1; print qq(ready\\n); sleep 30";
    let mut child = Command::new("bash")
        .args([
            "-c",
            "exec -a /usr/lib/postfix/sbin/master perl -MIO::Socket::INET -e \"$0\"",
            script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash + perl needed for this test");
    let mut out = child.stdout.take().unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).expect("helper did not start");
    assert!(start.elapsed() < Duration::from_secs(20));
    let c = live_check();
    let pid = child.id();
    let _ = child.kill();
    let _ = child.wait();
    let running = c
        .findings
        .iter()
        .find(|f| f.fact == FactKind::Running && f.evidence == format!("pid {pid}"));
    assert_eq!(
        running.map(|f| f.mta),
        Some(Mta::Postfix),
        "{:?}",
        c.findings
    );
    let l = c
        .findings
        .iter()
        .find(|f| f.fact == FactKind::Listening && f.detail.starts_with("127.0.0.78:587"))
        .expect("listener");
    assert_eq!(l.mta, Mta::Postfix);
    assert!(l.detail.contains(&format!("pid {pid} ")), "{l:?}");
}
