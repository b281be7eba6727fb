//! Postfix master.cf listeners on a root built from the real Debian postfix package: the stock
//! master.cf (postinst copies /usr/share/postfix/master.cf.dist) and variants of it an admin
//! makes (commented, switched off with master_service_disable, bound to loopback, bound to the
//! wildcard address, submission only, a content-filter re-injection port, a `-o inet_interfaces`
//! that the master ignores). For every variant: the verdict per listener with its master.cf
//! line, the agent's reading of master.cf agrees with the real `postconf -M`, `harden --mode
//! loopback-only` leaves no listener beyond loopback (and the real postconf reads the result
//! without a warning), and `revert` restores the tree byte for byte.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::*;
use relayguard_agent::detect::master_cf;
use relayguard_core::agent_report::{FactKind, Mta};

const MASTER: &str = "/etc/postfix/master.cf";
const MAIN: &str = "/etc/postfix/main.cf";
const NOTHING_LISTENS: &str = "nothing listens on the network";
const STOCK_SMTP: &str = "\nsmtp      inet  n       -       y       -       -       smtpd\n";

/// `postconf -c DIR ARGS`, retried while the package is being reinstalled by CI.
fn postconf(r: &TempRoot, args: &[&str]) -> (String, String) {
    let dir = r.p("/etc/postfix");
    for _ in 0..12 {
        match Command::new("postconf")
            .arg("-c")
            .arg(&dir)
            .args(args)
            .output()
        {
            Ok(o) if o.status.success() => {
                return (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                );
            }
            Ok(o) => panic!(
                "postconf {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(_) => std::thread::sleep(std::time::Duration::from_secs(10)),
        }
    }
    panic!("postconf not found: install the postfix package");
}

/// inet entries as the real postconf reads them: (name, command with arguments).
fn postconf_inet(r: &TempRoot) -> Vec<(String, String)> {
    let (out, err) = postconf(r, &["-M"]);
    assert!(!err.contains("warning"), "postconf -M: {err}");
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[1] == "inet").then(|| (f[0].to_string(), f[7..].join(" ")))
        })
        .collect()
}

/// inet entries as the agent reads them.
fn agent_inet(text: &str) -> Vec<(String, String)> {
    master_cf::parse(text)
        .into_iter()
        .filter(|s| s.kind == "inet")
        .map(|s| {
            let mut cmd = vec![s.command.clone()];
            cmd.extend(s.args.iter().cloned());
            (s.name.clone(), cmd.join(" "))
        })
        .collect()
}

/// 1-based line of the first line of `text` starting with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
        + 1
}

struct Variant {
    name: &'static str,
    master: String,
    main: String,
    /// (line prefix in master.cf, or "" for the whole file; expected fact; text the detail
    /// must contain)
    expect: Vec<(&'static str, FactKind, &'static str)>,
}

fn variants(dist: &str, main: &str) -> Vec<Variant> {
    let local_main = main.replace("inet_interfaces = all", "inet_interfaces = loopback-only");
    assert_ne!(local_main, main);
    let commented = dist.replace(STOCK_SMTP, &STOCK_SMTP.replacen("\nsmtp", "\n#smtp", 1));
    // Submission only: the smtp line commented, the package's submission block switched on the
    // way its comment suggests (the service line and its -o lines, not the prose).
    let mut in_block = false;
    let submission_only: String = commented
        .split_inclusive('\n')
        .map(|l| {
            if l.starts_with("#submission inet") {
                in_block = true;
                return l[1..].to_string();
            }
            if in_block && l.starts_with("#  -o ") {
                return l[1..].to_string();
            }
            if l.starts_with("# Choose one: enable submissions") {
                in_block = false;
            }
            l.to_string()
        })
        .collect();
    vec![
        Variant {
            name: "stock",
            master: dist.to_string(),
            main: main.to_string(),
            expect: vec![("smtp      inet", FactKind::Exposed, "inet_interfaces = all")],
        },
        Variant {
            name: "commented",
            master: commented.clone(),
            main: main.to_string(),
            expect: vec![("", FactKind::LoopbackOnly, NOTHING_LISTENS)],
        },
        Variant {
            name: "disabled",
            master: dist.to_string(),
            main: format!("{main}master_service_disable = inet\n"),
            expect: vec![
                (
                    "smtp      inet",
                    FactKind::DisabledAtBoot,
                    "master_service_disable (inet",
                ),
                ("", FactKind::LoopbackOnly, NOTHING_LISTENS),
            ],
        },
        Variant {
            name: "loopback-bound",
            master: dist.replace(STOCK_SMTP, "\n127.0.0.1:smtp inet n - y - - smtpd\n"),
            main: main.to_string(),
            expect: vec![("127.0.0.1:smtp", FactKind::LoopbackOnly, "binds 127.0.0.1")],
        },
        Variant {
            name: "wildcard",
            master: dist.replace(STOCK_SMTP, "\n0.0.0.0:smtp inet n - y - - smtpd\n"),
            main: local_main.clone(),
            expect: vec![(
                "0.0.0.0:smtp",
                FactKind::Exposed,
                "host field overrides inet_interfaces",
            )],
        },
        Variant {
            name: "submission-only",
            master: submission_only,
            main: main.to_string(),
            expect: vec![("submission inet", FactKind::Exposed, "port 587")],
        },
        Variant {
            name: "content-filter",
            master: format!(
                "{dist}127.0.0.1:10025 inet n - n - - smtpd\n  -o content_filter=\n  -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n"
            ),
            main: main.to_string(),
            expect: vec![
                ("smtp      inet", FactKind::Exposed, "inet_interfaces = all"),
                ("127.0.0.1:10025", FactKind::LoopbackOnly, "port 10025"),
            ],
        },
        Variant {
            name: "o-inet-interfaces",
            master: format!(
                "{dist}0.0.0.0:submission inet n - y - - smtpd\n#  -o syslog_name=postfix/submission\n  -o inet_interfaces=127.0.0.1\n"
            ),
            main: local_main,
            expect: vec![
                ("smtp      inet", FactKind::LoopbackOnly, "loopback-only"),
                (
                    "0.0.0.0:submission",
                    FactKind::Exposed,
                    "-o inet_interfaces is ignored",
                ),
            ],
        },
    ]
}

#[test]
fn master_cf_matrix_check_postconf_harden_revert() {
    let r = debian_root("master-cf");
    let dist = r.read("/usr/share/postfix/master.cf.dist");
    assert_eq!(r.read(MASTER), dist, "postinst's copy");
    let main = r.read(MAIN);
    for v in variants(&dist, &main) {
        let name = v.name;
        r.write(MASTER, &v.master, 0o644);
        r.write(MAIN, &v.main, 0o644);
        // The agent reads master.cf as the real Postfix does.
        assert_eq!(
            agent_inet(&v.master),
            postconf_inet(&r),
            "{name}: agent and postconf -M disagree"
        );

        let c = check(&r);
        let mut pf: Vec<_> = c
            .findings
            .iter()
            .filter(|f| {
                f.mta == Mta::Postfix
                    && matches!(
                        f.fact,
                        FactKind::Exposed | FactKind::LoopbackOnly | FactKind::DisabledAtBoot
                    )
            })
            .cloned()
            .collect();
        for (prefix, fact, detail) in &v.expect {
            // An empty prefix: a verdict about the whole file.
            let ev = if prefix.is_empty() {
                MASTER.to_string()
            } else {
                format!("{MASTER}:{}", line_of(&v.master, prefix))
            };
            let at = pf
                .iter()
                .position(|f| f.evidence == ev && f.fact == *fact && f.detail.contains(detail))
                .unwrap_or_else(|| panic!("{name}: no {fact:?} at {ev} with {detail:?}: {pf:?}"));
            pf.remove(at);
        }
        assert!(pf.is_empty(), "{name}: unexpected {pf:?}");

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
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let c = check(&r);
        assert!(
            facts(&c, Mta::Postfix, FactKind::Exposed).is_empty(),
            "{name}: still exposed after harden: {:?}",
            facts(&c, Mta::Postfix, FactKind::Exposed)
        );
        // The real postconf reads the hardened files without a warning, and every inet smtpd
        // it sees binds loopback, by its host field or by inet_interfaces.
        let (ifaces, _) = postconf(&r, &["-h", "inet_interfaces"]);
        let (off, _) = postconf(&r, &["-h", "master_service_disable"]);
        for (svc, cmd) in postconf_inet(&r) {
            let switched_off = off
                .split([',', ' ', '\n'])
                .any(|i| i == "inet" || i == format!("{svc}/inet"));
            if switched_off || !(cmd.starts_with("smtpd") || cmd.starts_with("postscreen")) {
                continue;
            }
            let local = svc.starts_with("127.0.0.1:")
                || svc.starts_with("[::1]:")
                || (!svc.contains(':') && ifaces.trim() == "loopback-only");
            assert!(local, "{name}: {svc} {cmd} with inet_interfaces = {ifaces}");
        }
        // Postfix keeps running at boot: loopback-only keeps local mail.
        assert_eq!(systemctl_is_enabled(&r, "postfix"), "enabled", "{name}");
        let o = run(&["revert", "--root", &r.arg()]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same_tree(&before, &tree(&r.0));
    }
}

#[test]
fn wildcard_listener_rewritten_or_commented_and_crash_recovered() {
    let r = debian_root("master-cf-edit");
    let dist = r.read("/usr/share/postfix/master.cf.dist");
    let main = r
        .read(MAIN)
        .replace("inet_interfaces = all", "inet_interfaces = loopback-only");
    r.write(MAIN, &main, 0o644);
    // A wildcard smtp, and a wildcard submission whose loopback twin already exists further
    // down: renaming it would clash (Postfix keeps only the last), so it is commented out.
    let master = dist.replace(
        STOCK_SMTP,
        "\n0.0.0.0:smtp inet n - y - - smtpd\n  -o smtpd_tls_security_level=may\n",
    ) + "0.0.0.0:submission inet n - y - - smtpd\n  -o syslog_name=postfix/submission\n127.0.0.1:submission inet n - y - - smtpd\n";
    r.write(MASTER, &master, 0o640);
    let before = tree(&r.0);

    // Crash after the journal line of the master.cf write, before its rename: revert restores.
    let dry = stdout(&run(&[
        "harden",
        "--root",
        &r.arg(),
        "--role",
        "non-mail",
        "--mode",
        "loopback-only",
        "--dry-run",
    ]));
    let step = dry
        .lines()
        .find(|l| l.contains("master.cf"))
        .and_then(|l| l.trim().split('.').next())
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no master.cf step in {dry}"));
    let o = run_env(
        &[
            "harden",
            "--root",
            &r.arg(),
            "--role",
            "non-mail",
            "--mode",
            "loopback-only",
        ],
        &[("RELAYGUARD_AGENT_CRASH_BEFORE_RENAME", &step.to_string())],
    );
    assert_eq!(o.status.signal(), Some(6), "{:?}", o.status);
    assert!(r.p("/etc/postfix/.master.cf.relayguard-tmp").exists());
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));

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
    let edited = r.read(MASTER);
    assert!(
        edited
            .contains("\n127.0.0.1:smtp inet n - y - - smtpd\n  -o smtpd_tls_security_level=may\n"),
        "{edited}"
    );
    assert!(
        edited.contains("\n#relayguard-agent# 0.0.0.0:submission inet n - y - - smtpd\n#relayguard-agent#   -o syslog_name=postfix/submission\n127.0.0.1:submission inet"),
        "{edited}"
    );
    assert_eq!(
        edited.lines().count(),
        master.lines().count(),
        "only lines changed"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(r.p(MASTER)).unwrap().permissions().mode() & 0o777,
        0o640,
        "mode kept"
    );
    let names: Vec<String> = postconf_inet(&r).into_iter().map(|e| e.0).collect();
    assert!(names.contains(&"127.0.0.1:smtp".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("0.0.0.0")), "{names:?}");
    assert!(facts(&check(&r), Mta::Postfix, FactKind::Exposed).is_empty());
    let o = run(&["revert", "--root", &r.arg()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&before, &tree(&r.0));
}
