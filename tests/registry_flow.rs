//! End-to-end: sweeps recorded in the embedded registry (real SQLite) against real Postfix, and
//! the findings lifecycle: opened, `unregistered-mta` only where no mail role is registered,
//! resolved when a later sweep that covered the address no longer sees them, and left open when
//! the address was excluded from that sweep.

use std::collections::BTreeSet;
use std::process::Command;

use relayguard_testkit::{Personality, Postfix, scanner_source_addr};
use serde_json::Value;

struct Registry {
    url: String,
    dir: std::path::PathBuf,
}

impl Registry {
    fn new() -> Registry {
        let dir = std::env::temp_dir().join(format!("relayguard-flow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Registry {
            url: format!("sqlite://{}/registry.db", dir.display()),
            dir,
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
            .env("RELAYGUARD_DATABASE", &self.url)
            .args(args)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn sweep(&self, extra: &[&str]) {
        let source = scanner_source_addr().to_string();
        let mut args = vec!["sweep", "--no-progress", "--source", &source, "--rate", "0"];
        args.extend_from_slice(extra);
        self.run(&args);
    }

    /// (address, kind) of the findings with this status.
    fn findings(&self, status: &str) -> BTreeSet<(String, String)> {
        let out = self.run(&["findings", "--status", status, "--format", "json"]);
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["address"].as_str().unwrap().to_string(),
                    f["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn has(set: &BTreeSet<(String, String)>, addr: &str, kind: &str) -> bool {
    set.contains(&(addr.to_string(), kind.to_string()))
}

#[test]
fn sweeps_open_and_resolve_findings_by_coverage() {
    let registry = Registry::new();
    let relay = Postfix::start(Personality::OpenRelay);
    let registered = Postfix::start(Personality::Closed);
    let (relay_ip, reg_ip) = (relay.addr().to_string(), registered.addr().to_string());
    registry.run(&[
        "hosts",
        "add",
        &reg_ip,
        "--hostname",
        registered.hostname(),
        "--role",
        "mail-direct",
        "--admin-name",
        "Mail Admin",
        "--admin-email",
        "mail-admin@campus.test",
    ]);

    registry.sweep(&[&relay_ip, &reg_ip]);
    let open = registry.findings("open");
    assert!(has(&open, &relay_ip, "open-relay"), "{open:?}");
    assert!(has(&open, &relay_ip, "unregistered-mta"), "{open:?}");
    assert!(has(&open, &reg_ip, "vrfy-enabled"), "{open:?}");
    assert!(
        !has(&open, &reg_ip, "unregistered-mta"),
        "a registered mail server: {open:?}"
    );

    // The relay goes away; the registered host is excluded from the next sweep.
    drop(relay);
    registry.sweep(&["--exclude", &reg_ip, &relay_ip, &reg_ip]);
    let open = registry.findings("open");
    let resolved = registry.findings("resolved");
    assert!(has(&resolved, &relay_ip, "open-relay"), "{resolved:?}");
    assert!(!has(&open, &relay_ip, "open-relay"), "{open:?}");
    // Not covered by the second sweep: still open, not resolved.
    assert!(has(&open, &reg_ip, "vrfy-enabled"), "{open:?}");
}
