//! An MTA that comes back after `harden` (a package upgrade, a new dependency) is switched off
//! again and reported as reappeared, on roots built from real Debian packages and changed by
//! the real maintainer tools (dpkg-deb, update-rc.d, deb-systemd-helper, systemctl).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::*;
use relayguard_core::agent_report::{AgentReport, FactKind, Mta, parse_report};

fn harden(r: &TempRoot) -> String {
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

fn report(r: &TempRoot) -> AgentReport {
    let o = run(&["report", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    parse_report(&stdout(&o)).expect("a valid report")
}

/// The real `systemctl --root unmask`: what an administrator (or a configuration tool) runs.
fn unmask(r: &TempRoot, unit: &str) {
    let o = Command::new("systemctl")
        .arg(format!("--root={}", r.arg()))
        .args(["unmask", unit])
        .output()
        .expect("systemctl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `systemctl unmask postfix.service`, then what purging and reinstalling postfix does to its
/// enablement: the real tools its postrm purge runs (`deb-systemd-helper purge`,
/// `update-rc.d postfix remove`), then its postinst's (via [`install_debs`]).
fn bring_back_postfix(r: &TempRoot) {
    unmask(r, "postfix.service");
    let o = Command::new("deb-systemd-helper")
        .env("DPKG_ROOT", &r.0)
        .env("DPKG_MAINTSCRIPT_PACKAGE", "postfix")
        .args(["purge", "postfix.service"])
        .output()
        .expect("deb-systemd-helper");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // -f: the init script is still there, as the package's files are not removed here.
    let o = Command::new("update-rc.d")
        .env("DPKG_ROOT", &r.0)
        .args(["-f", "postfix", "remove"])
        .output()
        .expect("update-rc.d");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    install_debs(r, &["postfix"]);
}

#[test]
fn an_mta_brought_back_is_switched_off_again_and_reported() {
    let r = debian_root("reappear");
    let postfix_version = deb_version("postfix");
    assert!(!postfix_version.is_empty());
    harden(&r);
    assert!(report(&r).reappeared.is_empty(), "nothing came back yet");

    // Reinstalling postfix runs its postinst's deb-systemd-helper enable: the real tool
    // honours the agent's mask, so nothing comes back and nothing is reported.
    install_debs(&r, &["postfix"]);
    assert_eq!(systemctl_is_enabled(&r, "postfix"), "masked");
    let quiet = harden(&r);
    assert!(quiet.contains("nothing to change"), "{quiet}");
    assert!(!quiet.contains("reappeared"), "{quiet}");

    // The administrator unmasks it; later postfix is purged and installed again (a dependency
    // pulls it back in): its postrm purge and postinst enable it afresh.
    bring_back_postfix(&r);
    assert_eq!(systemctl_is_enabled(&r, "postfix"), "enabled");
    let wants = "/etc/systemd/system/multi-user.target.wants/postfix.service";
    assert!(
        facts(&check(&r), Mta::Postfix, FactKind::EnabledAtBoot)
            .iter()
            .any(|f| f.evidence == wants)
    );
    let again = harden(&r);
    let line = again
        .lines()
        .find(|l| l.starts_with("reappeared: postfix enabled again after harden ("))
        .unwrap_or_else(|| panic!("no reappearance line:\n{again}"));
    assert!(line.contains(wants), "{line}");
    assert!(line.contains("/etc/rc2.d/S01postfix"), "{line}");
    assert!(
        line.ends_with(&format!(
            "; package postfix {postfix_version}; switched off again"
        )),
        "{line}"
    );
    assert_eq!(systemctl_is_enabled(&r, "postfix"), "masked");
    assert!(facts(&check(&r), Mta::Postfix, FactKind::EnabledAtBoot).is_empty());

    let rep = report(&r);
    assert_eq!(rep.reappeared.len(), 1, "{:?}", rep.reappeared);
    let p = &rep.reappeared[0];
    assert_eq!(p.mta, Mta::Postfix);
    assert!(p.previously_hardened);
    assert_eq!(
        p.package
            .as_ref()
            .map(|p| (p.name.as_str(), p.version.as_str())),
        Some(("postfix", postfix_version.as_str()))
    );
    assert_eq!(
        p.hardened_version.as_deref(),
        Some(postfix_version.as_str())
    );
    assert!(p.at > 1_700_000_000 && p.at <= rep.generated_at);

    // A dependency pulls in another MTA: courier-mta, enabled by its postinst.
    install_debs(&r, &["courier-base", "courier-mta"]);
    let courier = harden(&r);
    let courier_version = deb_version("courier-mta");
    assert!(
        courier.contains("reappeared: courier newly enabled after harden (")
            && courier.contains(&format!("package courier-mta {courier_version}")),
        "{courier}"
    );
    for u in ["courier-mta", "courier-mta-ssl", "courier-msa"] {
        let s = systemctl_is_enabled(&r, u);
        assert!(s == "masked" || s == "disabled", "{u}: {s}");
    }
    let rep = report(&r);
    assert_eq!(
        rep.reappeared.iter().map(|x| x.mta).collect::<Vec<_>>(),
        [Mta::Postfix, Mta::Courier]
    );
    assert!(!rep.reappeared[1].previously_hardened);
    assert!(harden(&r).contains("nothing to change"));
    assert_eq!(report(&r).reappeared.len(), 2, "reported, not repeated");

    // Revert undoes every round: the tree is what the same package operations leave on a host
    // the agent never touched.
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = debian_root("reappear-reference");
    install_debs(&reference, &["postfix"]);
    bring_back_postfix(&reference);
    install_debs(&reference, &["courier-base", "courier-mta"]);
    assert_same_tree(&tree(&reference.0), &tree(&r.0));
    assert!(report(&r).reappeared.is_empty());
}

/// The number of steps a harden of `r` would make.
fn planned_steps(r: &TempRoot) -> usize {
    let o = run(&[
        "harden",
        "--root",
        &r.arg(),
        "--role",
        "non-mail",
        "--dry-run",
    ]);
    stdout(&o)
        .lines()
        .filter(|l| l.trim_start().split_once(". [").is_some())
        .count()
}

#[test]
fn finishing_an_interrupted_run_is_no_reappearance() {
    let r = debian_root("reappear-crash");
    let n = planned_steps(&r);
    assert!(n > 6, "{n} steps");
    // A crash midway: the next run makes the remaining steps, and that is no reappearance.
    let o = run_env(
        &["harden", "--root", &r.arg(), "--role", "non-mail"],
        &[("RELAYGUARD_AGENT_CRASH_AFTER_JOURNAL", "5")],
    );
    assert_eq!(o.status.signal(), Some(6));
    let resumed = harden(&r);
    assert!(resumed.contains("changes:"), "{resumed}");
    assert!(!resumed.contains("reappeared"), "{resumed}");

    // A crash after the last change, before the round-end line: the next run has nothing to
    // change and finishes the round, so a later comeback is recognised.
    let r = debian_root("reappear-crash-last");
    let n_s = n.to_string();
    let o = run_env(
        &["harden", "--root", &r.arg(), "--role", "non-mail"],
        &[("RELAYGUARD_AGENT_CRASH_AFTER_CHANGE", &n_s)],
    );
    assert_eq!(o.status.signal(), Some(6));
    let journal = r.read("/var/lib/relayguard-agent/journal.jsonl");
    assert!(!journal.contains("\"complete\""), "no round-end line yet");
    assert!(harden(&r).contains("nothing to change"));
    assert!(
        r.read("/var/lib/relayguard-agent/journal.jsonl")
            .contains(&format!("{{\"complete\":{n},\"mode\":\"disable\"")),
        "the round is finished"
    );
    bring_back_postfix(&r);
    assert!(harden(&r).contains("reappeared: postfix enabled again"));

    // A different mode is a new decision, not a comeback.
    let r = debian_root("reappear-mode");
    harden(&r);
    let o = run(&[
        "harden",
        "--root",
        &r.arg(),
        "--role",
        "non-mail",
        "--mode",
        "loopback-only",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout(&o).contains("reappeared"), "{}", stdout(&o));
}
