//! End-to-end tests on a root built from real Debian packages (postfix, exim4, sendmail,
//! opensmtpd, nullmailer, systemd) enabled by the real update-rc.d and deb-systemd-helper.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::*;
use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

const LISTENING_UNITS: [&str; 4] = ["postfix", "opensmtpd", "exim4", "sendmail"];

#[test]
fn check_reports_every_enablement_with_proof() {
    let r = debian_root("check");
    let o = run(&["check", "--root", &r.arg()]);
    assert_eq!(o.status.code(), Some(1), "an enabled MTA gives exit code 1");
    let table = stdout(&o);
    assert!(table.contains("live facts: skipped"), "{table}");

    let c = check(&r);
    assert!(matches!(
        c.live,
        relayguard_core::agent_report::LiveFacts::Skipped { .. }
    ));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    for mta in [
        Mta::Postfix,
        Mta::Exim,
        Mta::Sendmail,
        Mta::Opensmtpd,
        Mta::Nullmailer,
    ] {
        assert!(
            !facts(&c, mta, FactKind::Installed).is_empty(),
            "{mta:?} installed"
        );
    }
    let pf = facts(&c, Mta::Postfix, FactKind::EnabledAtBoot);
    assert!(pf.iter().any(|f| f.mechanism == Some(Mechanism::Systemd)
        && f.evidence == "/etc/systemd/system/multi-user.target.wants/postfix.service"));
    assert!(
        pf.iter()
            .any(|f| f.evidence.ends_with("postfix-instance-generator"))
    );
    // exim4 and sendmail have no native unit in Debian 12: systemd generates them from rc links.
    for mta in [Mta::Exim, Mta::Sendmail] {
        let e = facts(&c, mta, FactKind::EnabledAtBoot);
        assert!(
            e.iter()
                .any(|f| f.mechanism == Some(Mechanism::SystemdSysvGenerated)),
            "{mta:?}: {e:?}"
        );
        assert_eq!(
            e.iter()
                .filter(|f| f.mechanism == Some(Mechanism::Sysv))
                .count(),
            4,
            "rc2..5 links"
        );
    }
    assert!(
        facts(&c, Mta::Postfix, FactKind::Exposed)
            .iter()
            .any(|f| f.detail.contains("inet_interfaces = all"))
    );
    assert!(!facts(&c, Mta::Opensmtpd, FactKind::LoopbackOnly).is_empty());
}

#[test]
fn harden_disables_systemctl_agrees_and_revert_is_byte_identical() {
    let r = debian_root("harden");
    for u in LISTENING_UNITS {
        assert_eq!(systemctl_is_enabled(&r, u), "enabled", "{u} enabled before");
    }
    let before = tree(&r.0);

    let dry = run(&[
        "harden",
        "--root",
        &r.arg(),
        "--role",
        "non-mail",
        "--dry-run",
    ]);
    assert!(dry.status.success());
    assert!(
        stdout(&dry).contains("mask postfix.service"),
        "{}",
        stdout(&dry)
    );
    assert_same_tree(&before, &tree(&r.0));

    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for u in LISTENING_UNITS {
        let s = systemctl_is_enabled(&r, u);
        assert!(s == "disabled" || s == "masked", "{u}: {s}");
    }
    // nullmailer never listens and local mail needs it: left alone.
    assert_eq!(systemctl_is_enabled(&r, "nullmailer"), "enabled");
    let c = check(&r);
    for mta in [Mta::Postfix, Mta::Exim, Mta::Sendmail, Mta::Opensmtpd] {
        assert!(
            facts(&c, mta, FactKind::EnabledAtBoot).is_empty(),
            "{mta:?} still enabled"
        );
    }

    // Idempotent: a second run changes nothing.
    let after_first = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert_same_tree(&after_first, &tree(&r.0));

    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
    for u in LISTENING_UNITS {
        assert_eq!(
            systemctl_is_enabled(&r, u),
            "enabled",
            "{u} enabled after revert"
        );
    }
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(stdout(&o).contains("nothing to revert"));
}

#[test]
fn harden_refuses_without_non_mail_role() {
    let r = debian_root("role");
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg()]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--role non-mail"));
    let o = run(&["harden", "--root", &r.arg(), "--role", "mail"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("mail server"));
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn loopback_only_mode_edits_config_and_disables_the_rest() {
    let r = debian_root("loopback");
    let before = tree(&r.0);
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
    assert!(
        r.read("/etc/postfix/main.cf")
            .contains("\ninet_interfaces = loopback-only\n")
    );
    assert!(
        !r.read("/etc/postfix/main.cf")
            .contains("inet_interfaces = all")
    );
    assert!(
        r.read("/etc/exim4/update-exim4.conf.conf")
            .contains("dc_local_interfaces='127.0.0.1 ; ::1'")
    );
    // postfix and exim keep running at boot; opensmtpd already listens on localhost only.
    assert_eq!(systemctl_is_enabled(&r, "postfix"), "enabled");
    assert_eq!(systemctl_is_enabled(&r, "exim4"), "enabled");
    assert_eq!(systemctl_is_enabled(&r, "opensmtpd"), "enabled");
    // sendmail has no knob we edit (sendmail.cf is generated): disabled instead.
    let s = systemctl_is_enabled(&r, "sendmail");
    assert!(s == "masked" || s == "disabled", "{s}");
    let c = check(&r);
    assert!(facts(&c, Mta::Postfix, FactKind::Exposed).is_empty());
    run(&["revert", "--root", &r.arg()]);
    assert_same_tree(&before, &tree(&r.0));
}

fn crash_then_revert(name: &str, var: &str, n: usize) {
    let r = debian_root(name);
    let before = tree(&r.0);
    let n_s = n.to_string();
    let o = run_env(
        &["harden", "--root", &r.arg(), "--role", "non-mail"],
        &[(var, &n_s)],
    );
    assert_eq!(
        o.status.signal(),
        Some(6),
        "{var}={n}: expected abort, got {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    // The crash left the journal and possibly partial changes behind.
    let crashed = tree(&r.0);
    assert_ne!(before, crashed);
    assert!(crashed.contains_key("var/lib/relayguard-agent/journal.jsonl"));
    if n >= 3 {
        assert!(
            !crashed.contains_key("etc/systemd/system/multi-user.target.wants/postfix.service"),
            "step 2 was applied"
        );
    }
    if var.ends_with("BEFORE_RENAME") {
        assert!(
            crashed.keys().any(|k| k.ends_with(".relayguard-tmp")),
            "temporary file left behind"
        );
    }
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
    for u in LISTENING_UNITS {
        assert_eq!(systemctl_is_enabled(&r, u), "enabled");
    }
}

#[test]
fn crash_between_first_journal_write_and_change() {
    crash_then_revert("crash1", "RELAYGUARD_AGENT_CRASH_AFTER_JOURNAL", 1);
}

#[test]
fn crash_midway_through_several_changes() {
    // Steps 1–10 include link removals, masks (new symlinks) and S->K renames.
    crash_then_revert("crash7", "RELAYGUARD_AGENT_CRASH_AFTER_JOURNAL", 7);
    crash_then_revert(
        "crash-after-change",
        "RELAYGUARD_AGENT_CRASH_AFTER_CHANGE",
        12,
    );
}

#[test]
fn crash_with_temporary_file_before_rename() {
    // Step 3 masks a unit: the temporary symlink exists, the rename has not happened.
    crash_then_revert("crash-tmp", "RELAYGUARD_AGENT_CRASH_BEFORE_RENAME", 3);
}

#[test]
fn crash_then_harden_again_then_revert() {
    let r = debian_root("crash-resume");
    let before = tree(&r.0);
    let o = run_env(
        &["harden", "--root", &r.arg(), "--role", "non-mail"],
        &[("RELAYGUARD_AGENT_CRASH_AFTER_JOURNAL", "5")],
    );
    assert_eq!(o.status.signal(), Some(6));
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for u in LISTENING_UNITS {
        let s = systemctl_is_enabled(&r, u);
        assert!(s == "disabled" || s == "masked", "{u}: {s}");
    }
    // A torn last line (crash while appending) is ignored: its change never started.
    let j = r.p("/var/lib/relayguard-agent/journal.jsonl");
    let mut text = std::fs::read_to_string(&j).unwrap();
    text.push_str("{\"seq\": 99, \"mta\": \"postf");
    std::fs::write(&j, text).unwrap();
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("incomplete last journal line"));
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn report_writes_versioned_json() {
    let r = debian_root("report");
    run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    let out = r.0.with_extension("report.json");
    let o = run(&[
        "report",
        "--root",
        &r.arg(),
        "--output",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let rep = relayguard_core::agent_report::parse_report(&text).unwrap();
    assert_eq!(rep.host.hostname, "lab-pc-1");
    assert!(!rep.actions.is_empty());
    assert!(
        rep.actions
            .iter()
            .any(|a| a.description.contains("mask postfix.service"))
    );
    std::fs::remove_file(out).unwrap();
}

#[test]
fn crash_during_revert_then_revert_again() {
    let r = debian_root("crash-revert");
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success());
    // Revert restores with step number 0: abort at its first atomic replacement.
    let o = run_env(
        &["revert", "--root", &r.arg()],
        &[("RELAYGUARD_AGENT_CRASH_BEFORE_RENAME", "0")],
    );
    assert_eq!(o.status.signal(), Some(6), "{:?}", o.status);
    assert_ne!(before, tree(&r.0));
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn courier_mta_from_the_real_package() {
    // courier-mta listens on 25 (courier-mta), 465 (courier-mta-ssl) and 587 (courier-msa);
    // courier and courierfilter are its delivery side and listen on nothing.
    let r = debian_root_with("courier", &["courier-base", "courier-mta"]);
    let listeners = ["courier-mta", "courier-mta-ssl", "courier-msa"];
    for u in listeners.iter().chain(&["courier", "courierfilter"]) {
        assert_eq!(
            systemctl_is_enabled(&r, u),
            "enabled",
            "{u} enabled by postinst"
        );
    }
    let c = check(&r);
    let courier = relayguard_agent::mta::COURIER;
    assert!(
        facts(&c, courier, FactKind::Installed)
            .iter()
            .any(|f| f.evidence == "/usr/sbin/courieresmtpd"),
        "{:?}",
        facts(&c, courier, FactKind::Installed)
    );
    let on = facts(&c, courier, FactKind::EnabledAtBoot);
    for u in listeners {
        assert!(
            on.iter().any(|f| f.mechanism == Some(Mechanism::Systemd)
                && f.evidence
                    == format!("/etc/systemd/system/multi-user.target.wants/{u}.service")),
            "{u}: {on:?}"
        );
    }
    assert!(
        !c.findings
            .iter()
            .any(|f| f.evidence.ends_with("/courier.service")
                || f.evidence.ends_with("courierfilter.service")),
        "the delivery side is not a listener"
    );
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for u in listeners {
        let s = systemctl_is_enabled(&r, u);
        assert!(s == "disabled" || s == "masked", "{u}: {s}");
    }
    // Local submission keeps working through courierd.
    assert_eq!(systemctl_is_enabled(&r, "courier"), "enabled");
    assert!(
        facts(&check(&r), courier, FactKind::EnabledAtBoot).is_empty(),
        "{:?}",
        facts(&check(&r), courier, FactKind::EnabledAtBoot)
    );
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
    for u in listeners {
        assert_eq!(systemctl_is_enabled(&r, u), "enabled", "{u} after revert");
    }
}
