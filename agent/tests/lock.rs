//! Two real agent processes on one root: while one `harden` holds the lock, a second `harden`
//! or `revert` says "busy" and exits 5 without touching anything; a run killed while holding
//! the lock leaves no deadlock; and the lock file never outlives the journal, so revert still
//! leaves the tree byte-identical.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const LOCK: &str = "var/lib/relayguard-agent/lock";

/// A tree with one thing to harden (an inetd smtp line).
fn root(name: &str) -> TempRoot {
    let r = TempRoot::new(name);
    r.write(
        "/etc/inetd.conf",
        "smtp stream tcp nowait root /usr/sbin/exim4 exim4 -bs\n",
        0o644,
    );
    r
}

/// Starts `harden` that stops right after taking the lock until `sync/release` exists.
fn paused_harden(r: &TempRoot, sync: &Path) -> Child {
    std::fs::create_dir_all(sync).unwrap();
    let child = Command::new(BIN)
        .args(["harden", "--root", &r.arg(), "--role", "non-mail"])
        .env("RELAYGUARD_AGENT_PAUSE_WITH_LOCK", sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sync.join("locked").exists() {
        assert!(
            Instant::now() < deadline,
            "first harden never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn second_run_is_busy_and_exits_5() {
    let r = root("lock-busy");
    let before = tree(&r.0);
    let sync = r.0.with_extension("sync");
    let first = paused_harden(&r, &sync);
    assert!(r.p(LOCK).exists());
    let held = tree(&r.0);
    for args in [
        vec!["harden", "--root", &r.arg(), "--role", "non-mail"],
        vec!["revert", "--root", &r.arg()],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(5), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("busy"), "{err}");
        assert!(err.contains("lock"), "{err}");
        assert_same_tree(&held, &tree(&r.0));
    }
    // A dry run takes no lock: it may look while another run works.
    let o = run(&[
        "harden",
        "--root",
        &r.arg(),
        "--role",
        "non-mail",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{o:?}");

    std::fs::write(sync.join("release"), "").unwrap();
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        r.read("/etc/inetd.conf")
            .starts_with("#relayguard-agent# smtp")
    );
    // Now that the first run is over, the second goes through.
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
    std::fs::remove_dir_all(sync).unwrap();
}

#[test]
fn killed_holder_is_not_a_deadlock() {
    let r = root("lock-killed");
    let before = tree(&r.0);
    let sync = r.0.with_extension("sync");
    let mut first = paused_harden(&r, &sync);
    first.kill().unwrap(); // SIGKILL: no chance to clean up
    first.wait().unwrap();
    assert!(
        r.p(LOCK).exists(),
        "the killed run's lock file stays behind"
    );
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        r.read("/etc/inetd.conf")
            .starts_with("#relayguard-agent# smtp")
    );
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The killed run wrote the directories it made into its lock file: they go too.
    assert_same_tree(&before, &tree(&r.0));
    std::fs::remove_dir_all(sync).unwrap();
}

#[test]
fn nothing_to_change_leaves_no_lock_behind() {
    let r = TempRoot::new("lock-clean");
    r.write("/etc/hostname", "lab-pc-1\n", 0o644);
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("nothing to change"));
    assert_same_tree(&before, &tree(&r.0));
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(stdout(&o).contains("nothing to revert"));
    assert_same_tree(&before, &tree(&r.0));
}
