//! `harden --stop`: running MTA daemons are stopped with SIGTERM where systemd is not init, and
//! the CLI refuses --stop where it cannot apply. The test process poses as Postfix's master
//! (argv[0] rewritten); the host's own configuration is never touched.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relayguard_agent::harden::stop::stop;
use relayguard_agent::live::proc::scan;
use relayguard_core::agent_report::Mta;

#[test]
fn a_running_master_is_stopped_with_sigterm() {
    let mut child = Command::new("bash")
        .args([
            "-c",
            "exec -a /usr/lib/postfix/sbin/master perl -e '$|=1; print qq(ready\\n); sleep 60'",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash + perl needed for this test");
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut buf).expect("helper started");
    let pid = child.id();
    // Only our own process: nothing else on this machine is signalled.
    let procs: Vec<_> = scan(Path::new("/proc"))
        .into_iter()
        .filter(|p| p.pid == pid)
        .collect();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].mta, Some(Mta::Postfix), "{procs:?}");

    let started = Instant::now();
    let stopped = stop(
        &procs,
        &[Mta::Postfix, Mta::Exim],
        false,
        Duration::from_secs(5),
    );
    assert_eq!(
        stopped.len(),
        1,
        "only MTAs that run are reported: {stopped:?}"
    );
    assert_eq!(stopped[0].actions, vec![format!("SIGTERM to pid {pid}")]);
    assert!(stopped[0].still_running.is_empty());
    let status = child.wait().unwrap();
    assert!(!status.success(), "ended by the signal: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn stop_is_refused_where_it_cannot_apply() {
    let agent = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_relayguard-agent"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = agent(&["harden", "--root", "/tmp", "--role", "non-mail", "--stop"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--root"));
    let out = agent(&[
        "harden",
        "--role",
        "non-mail",
        "--mode",
        "loopback-only",
        "--stop",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback-only"));
}
