//! `relayguard hosts thresholds` as the binary runs it (SQLite file): shows the defaults, sets
//! one threshold without touching the other, goes back to the default, refuses nonsense.

use std::process::Command;

/// Runs `relayguard --database URL ARGS…`: (success, stdout, stderr).
fn run(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .arg("--database")
        .arg(url)
        .args(args)
        .env("USER", "soc")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn thresholds_are_shown_set_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    let (ok, _, err) = run(
        &url,
        &[
            "hosts",
            "add",
            "192.0.2.25",
            "--hostname",
            "mx.example.ac.jp",
            "--role",
            "mail-direct",
            "--admin-name",
            "Tanaka",
            "--admin-email",
            "tanaka@example.ac.jp",
        ],
    );
    assert!(ok, "{err}");
    let show = |args: &[&str]| {
        let mut a = vec!["hosts", "thresholds", "192.0.2.25"];
        a.extend_from_slice(args);
        let (ok, out, err) = run(&url, &a);
        assert!(ok, "{err}");
        out
    };
    assert_eq!(
        show(&[]),
        "192.0.2.25: mail-queue-backlog at 500 (default) queued messages, bounce-burst at 100 (default) bounces\n"
    );
    assert_eq!(
        show(&["--queue-backlog", "2000"]),
        "192.0.2.25: mail-queue-backlog at 2000 queued messages, bounce-burst at 100 (default) bounces\n"
    );
    assert_eq!(
        show(&["--bounce-burst", "30"]),
        "192.0.2.25: mail-queue-backlog at 2000 queued messages, bounce-burst at 30 bounces\n",
        "the other threshold is kept"
    );
    assert_eq!(
        show(&["--queue-backlog", "default"]),
        "192.0.2.25: mail-queue-backlog at 500 (default) queued messages, bounce-burst at 30 bounces\n"
    );
    let (ok, log, _) = run(&url, &["findings", "audit-log"]);
    assert!(
        ok && log.matches("health-thresholds-set").count() == 3,
        "{log}"
    );

    for (args, says) in [
        (&["--bounce-burst", "0"][..], "bounce_burst_threshold"),
        (
            &["--bounce-burst", "many"][..],
            "neither a number nor `default`",
        ),
    ] {
        let mut a = vec!["hosts", "thresholds", "192.0.2.25"];
        a.extend_from_slice(args);
        let (ok, _, err) = run(&url, &a);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    let (ok, _, err) = run(&url, &["hosts", "thresholds", "192.0.2.99"]);
    assert!(!ok && err.contains("192.0.2.99"), "{err}");
}
