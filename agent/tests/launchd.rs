//! macOS launchd on written trees in the real formats: Apple's Postfix job as the XML property
//! list macOS ships, a Homebrew job and launchd's disabled-jobs database as binary property
//! lists written by the plist crate, and `/var` a link to `private/var` as on macOS.

mod common;

use std::os::unix::process::ExitStatusExt;

use common::*;
use plist::{Dictionary, Value};
use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

const DB: &str = "/private/var/db/com.apple.xpc.launchd/disabled.plist";

/// /System/Library/LaunchDaemons/com.apple.postfix.master.plist as macOS ships it.
const APPLE_POSTFIX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>com.apple.postfix.master</string>
	<key>Program</key>
	<string>/usr/libexec/postfix/master</string>
	<key>ProgramArguments</key>
	<array>
		<string>master</string>
		<string>-e</string>
		<string>60</string>
	</array>
	<key>QueueDirectories</key>
	<array>
		<string>/Library/Server/Mail/Data/spool/maildrop</string>
	</array>
	<key>AbandonProcessGroup</key>
	<true/>
</dict>
</plist>
"#;

/// macOS's aliases job: Postfix in its name, no listener.
const APPLE_NEWALIASES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>com.apple.postfix.newaliases</string>
	<key>ProgramArguments</key>
	<array>
		<string>/usr/bin/newaliases</string>
	</array>
	<key>WatchPaths</key>
	<array>
		<string>/etc/postfix/aliases</string>
	</array>
</dict>
</plist>
"#;

fn binary(v: Value) -> Vec<u8> {
    let mut out = Vec::new();
    v.to_writer_binary(&mut out).unwrap();
    out
}

fn dict(pairs: &[(&str, Value)]) -> Value {
    let mut d = Dictionary::new();
    for (k, v) in pairs {
        d.insert((*k).to_string(), v.clone());
    }
    Value::Dictionary(d)
}

/// The job `brew services start opensmtpd` installs as root, converted to binary.
fn homebrew_opensmtpd() -> Vec<u8> {
    binary(dict(&[
        ("Label", Value::String("homebrew.mxcl.opensmtpd".into())),
        (
            "ProgramArguments",
            Value::Array(vec![
                Value::String("/opt/homebrew/opt/opensmtpd/sbin/smtpd".into()),
                Value::String("-d".into()),
                Value::String("-f".into()),
                Value::String("/opt/homebrew/etc/mail/smtpd.conf".into()),
            ]),
        ),
        ("RunAtLoad", Value::Boolean(true)),
        ("KeepAlive", Value::Boolean(true)),
    ]))
}

/// A macOS root; `db` is the disabled-jobs database's content, if any.
fn mac_root(name: &str, db: Option<Vec<u8>>) -> TempRoot {
    let r = TempRoot::new(name);
    r.write(
        "/System/Library/LaunchDaemons/com.apple.postfix.master.plist",
        APPLE_POSTFIX,
        0o644,
    );
    r.write(
        "/System/Library/LaunchDaemons/com.apple.postfix.newaliases.plist",
        APPLE_NEWALIASES,
        0o644,
    );
    r.write(
        "/Library/LaunchDaemons/homebrew.mxcl.opensmtpd.plist",
        "",
        0o644,
    );
    std::fs::write(
        r.p("/Library/LaunchDaemons/homebrew.mxcl.opensmtpd.plist"),
        homebrew_opensmtpd(),
    )
    .unwrap();
    std::fs::create_dir_all(r.p("/private/var/db/com.apple.xpc.launchd")).unwrap();
    r.link("/var", "private/var");
    if let Some(db) = db {
        r.write(DB, "", 0o644);
        std::fs::write(r.p(DB), db).unwrap();
    }
    r
}

fn stock_db() -> Vec<u8> {
    binary(dict(&[
        ("com.apple.ftpd", Value::Boolean(true)),
        ("com.apple.smbd", Value::Boolean(false)),
    ]))
}

fn harden(r: &TempRoot) -> String {
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

#[test]
fn launchd_jobs_are_found_disabled_in_the_database_and_reverted() {
    let r = mac_root("launchd", Some(stock_db()));
    let o = run(&["check", "--root", &r.arg()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let c = check(&r);
    let pf = facts(&c, Mta::Postfix, FactKind::EnabledAtBoot);
    assert_eq!(pf.len(), 1, "{pf:?}");
    assert_eq!(pf[0].mechanism, Some(Mechanism::Launchd));
    assert_eq!(
        pf[0].evidence,
        "/System/Library/LaunchDaemons/com.apple.postfix.master.plist:6"
    );
    assert!(
        pf[0].detail.contains("QueueDirectories"),
        "{}",
        pf[0].detail
    );
    let smtpd = facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot);
    assert_eq!(
        smtpd
            .iter()
            .map(|f| f.evidence.as_str())
            .collect::<Vec<_>>(),
        ["/Library/LaunchDaemons/homebrew.mxcl.opensmtpd.plist"]
    );
    assert!(
        !c.findings.iter().any(|f| f.evidence.contains("newaliases")),
        "the aliases job is no MTA"
    );

    let before = tree(&r.0);
    let out = harden(&r);
    assert!(
        out.contains("launchctl disable system/com.apple.postfix.master"),
        "{out}"
    );
    let db = std::fs::read(r.p(DB)).unwrap();
    assert!(db.starts_with(b"bplist00"), "the database stays binary");
    let v = plist::Value::from_reader(std::io::Cursor::new(&db)).unwrap();
    let v = v.as_dictionary().unwrap();
    for (label, off) in [
        ("com.apple.postfix.master", true),
        ("homebrew.mxcl.opensmtpd", true),
        ("com.apple.ftpd", true),
        ("com.apple.smbd", false),
    ] {
        assert_eq!(v.get(label), Some(&Value::Boolean(off)), "{label}");
    }
    let c = check(&r);
    assert!(facts(&c, Mta::Postfix, FactKind::EnabledAtBoot).is_empty());
    assert!(facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot).is_empty());
    assert!(
        facts(&c, Mta::Postfix, FactKind::DisabledAtBoot)
            .iter()
            .any(|f| f.evidence == "/var/db/com.apple.xpc.launchd/disabled.plist")
    );
    assert!(harden(&r).contains("nothing to change"));

    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn a_missing_database_is_created_and_removed_again() {
    let r = mac_root("launchd-nodb", None);
    let before = tree(&r.0);
    harden(&r);
    let db = r.read(DB);
    assert!(db.contains("<key>com.apple.postfix.master</key>"), "{db}");
    assert!(facts(&check(&r), Mta::Postfix, FactKind::EnabledAtBoot).is_empty());
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn the_database_overrides_the_jobs_own_disabled_key() {
    // Disabled in the job, enabled by the database: on.
    let r = mac_root(
        "launchd-override",
        Some(binary(dict(&[(
            "homebrew.mxcl.opensmtpd",
            Value::Boolean(false),
        )]))),
    );
    let mut job = plist::Value::from_reader(std::io::Cursor::new(homebrew_opensmtpd())).unwrap();
    job.as_dictionary_mut()
        .unwrap()
        .insert("Disabled".into(), Value::Boolean(true));
    std::fs::write(
        r.p("/Library/LaunchDaemons/homebrew.mxcl.opensmtpd.plist"),
        binary(job),
    )
    .unwrap();
    let on = facts(&check(&r), Mta::Opensmtpd, FactKind::EnabledAtBoot);
    assert_eq!(on.len(), 1);
    assert!(on[0].detail.contains("enabled by"), "{}", on[0].detail);
    // Without the database entry the job's own key switches it off.
    std::fs::write(r.p(DB), binary(dict(&[]))).unwrap();
    let c = check(&r);
    assert!(facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot).is_empty());
    assert!(
        facts(&c, Mta::Opensmtpd, FactKind::DisabledAtBoot)[0]
            .detail
            .contains("Disabled = true in the job")
    );
}

#[test]
fn an_unreadable_database_is_never_rewritten() {
    let r = mac_root("launchd-junk", Some(b"bplist00 truncated".to_vec()));
    let c = check(&r);
    assert!(
        c.warnings.iter().any(|w| w.contains("disabled.plist")),
        "{:?}",
        c.warnings
    );
    let before = tree(&r.0);
    assert!(harden(&r).contains("nothing to change"));
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn a_crash_in_launchd_harden_is_reverted() {
    for (var, n) in [
        ("RELAYGUARD_AGENT_CRASH_AFTER_JOURNAL", "2"),
        ("RELAYGUARD_AGENT_CRASH_BEFORE_RENAME", "1"),
        ("RELAYGUARD_AGENT_CRASH_AFTER_CHANGE", "1"),
    ] {
        let r = mac_root("launchd-crash", Some(stock_db()));
        let before = tree(&r.0);
        let o = run_env(
            &["harden", "--root", &r.arg(), "--role", "non-mail"],
            &[(var, n)],
        );
        assert_eq!(o.status.signal(), Some(6), "{var}={n}");
        assert_ne!(before, tree(&r.0), "{var}={n}: the journal at least");
        let o = run(&["revert", "--root", &r.arg()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_same_tree(&before, &tree(&r.0));
    }
}

/// The agent `brew services start exim` writes without sudo, as a binary property list.
fn homebrew_exim_agent() -> Vec<u8> {
    binary(dict(&[
        ("Label", Value::String("homebrew.mxcl.exim".into())),
        (
            "ProgramArguments",
            Value::Array(vec![
                Value::String("/opt/homebrew/opt/exim/bin/exim".into()),
                Value::String("-bdf".into()),
                Value::String("-q30m".into()),
            ]),
        ),
        ("RunAtLoad", Value::Boolean(true)),
        ("KeepAlive", Value::Boolean(true)),
    ]))
}

#[test]
fn launch_agents_are_judged_and_switched_off_per_user() {
    use std::os::unix::fs::chown;
    let r = mac_root("launchd-agents", Some(stock_db()));
    // Two users, alice (501) and bob (502); Shared is no user.
    for (home, uid) in [("/Users/alice", 501), ("/Users/bob", 502)] {
        std::fs::create_dir_all(r.p(home)).unwrap();
        chown(r.p(home), Some(uid), Some(20)).unwrap();
    }
    std::fs::create_dir_all(r.p("/Users/Shared")).unwrap();
    // alice's own Homebrew Exim, and a Postfix job for every user.
    let alice_exim = "/Users/alice/Library/LaunchAgents/homebrew.mxcl.exim.plist";
    r.write(alice_exim, "", 0o644);
    std::fs::write(r.p(alice_exim), homebrew_exim_agent()).unwrap();
    r.write(
        "/Library/LaunchAgents/org.postfix.master.plist",
        &APPLE_POSTFIX.replace("com.apple.postfix.master", "org.postfix.master"),
        0o644,
    );
    // bob already switched the Postfix agent off in his domain.
    let bob_db = "/private/var/db/com.apple.xpc.launchd/disabled.502.plist";
    r.write(bob_db, "", 0o644);
    std::fs::write(
        r.p(bob_db),
        binary(dict(&[("org.postfix.master", Value::Boolean(true))])),
    )
    .unwrap();

    let c = check(&r);
    let exim = facts(&c, Mta::Exim, FactKind::EnabledAtBoot);
    assert_eq!(exim.len(), 1, "{exim:?}");
    assert_eq!(exim[0].evidence, alice_exim);
    assert!(
        exim[0].detail.contains("in gui/501, at the user's login"),
        "{}",
        exim[0].detail
    );
    let pf: Vec<_> = facts(&c, Mta::Postfix, FactKind::EnabledAtBoot)
        .into_iter()
        .filter(|f| f.evidence.starts_with("/Library/LaunchAgents/"))
        .collect();
    assert_eq!(pf.len(), 1, "only alice's domain has it on: {pf:?}");
    assert!(pf[0].detail.contains("gui/501"), "{}", pf[0].detail);
    assert!(
        facts(&c, Mta::Postfix, FactKind::DisabledAtBoot)
            .iter()
            .any(|f| f.evidence == "/var/db/com.apple.xpc.launchd/disabled.502.plist"),
        "bob's database proves it off for him"
    );

    let before = tree(&r.0);
    let out = harden(&r);
    assert!(
        out.contains("launchctl disable gui/501/homebrew.mxcl.exim"),
        "{out}"
    );
    assert!(
        out.contains("launchctl disable gui/501/org.postfix.master"),
        "{out}"
    );
    assert!(!out.contains("gui/502"), "bob's is off already: {out}");
    // alice had no database: a new one, XML, with both of her jobs off.
    let alice_db =
        std::fs::read_to_string(r.p("/private/var/db/com.apple.xpc.launchd/disabled.501.plist"))
            .unwrap();
    for label in ["homebrew.mxcl.exim", "org.postfix.master"] {
        assert!(
            alice_db.contains(&format!("<key>{label}</key>")),
            "{alice_db}"
        );
    }
    let c = check(&r);
    assert!(facts(&c, Mta::Exim, FactKind::EnabledAtBoot).is_empty());
    assert!(
        facts(&c, Mta::Postfix, FactKind::EnabledAtBoot).is_empty(),
        "{:?}",
        c.findings
    );

    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
}
