//! Boot mechanisms without Debian packages to download: trees written by the test in the
//! layouts of each init system's own documentation (FreeBSD rc.conf family,
//! inetd/xinetd, runit and daemontools qmail, OpenRC, Slackware, Solaris rc2.d, SunOS rc.local).

mod common;

use common::*;
use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

/// The MTA section of FreeBSD's /etc/defaults/rc.conf (libexec/rc/rc.conf).
const FREEBSD_DEFAULTS: &str = r#"#!/bin/sh
# This is rc.conf - a file full of useful variables that you can set
rc_conf_files="/etc/rc.conf /etc/rc.conf.local"
hostname=""
##############################################################
###  Mail Transfer Agent (MTA) options  ######################
##############################################################

mta_start_script="/etc/rc.sendmail"
sendmail_enable="NO"	# Run the sendmail inbound daemon (YES/NO).
sendmail_pidfile="/var/run/sendmail.pid"
sendmail_procname="/usr/sbin/sendmail"
sendmail_flags="-L sm-mta -bd -q30m"
sendmail_cert_create="YES"
sendmail_submit_enable="YES"	# Start a localhost-only MTA for mail submission
sendmail_submit_flags="-L sm-mta -bd -q30m -ODaemonPortOptions=Addr=localhost"
sendmail_outbound_enable="YES"	# Dequeue stuck mail (YES/NO).
sendmail_outbound_flags="-L sm-queue -q30m"
sendmail_msp_queue_enable="YES"	# Dequeue stuck clientmqueue mail (YES/NO).
sendmail_msp_queue_flags="-L sm-msp-queue -Ac -q30m"
sendmail_rebuild_aliases="NO"
"#;

fn freebsd(name: &str, rc_conf: &str) -> TempRoot {
    let r = TempRoot::new(name);
    r.write("/etc/defaults/rc.conf", FREEBSD_DEFAULTS, 0o444);
    r.write("/etc/rc.conf", rc_conf, 0o644);
    r.write(
        "/etc/rc.d/sendmail",
        "#!/bin/sh\n# PROVIDE: mail\nrcvar=sendmail_enable\n",
        0o555,
    );
    r.write(
        "/etc/mail/sendmail.cf",
        "O DaemonPortOptions=Name=MTA\n",
        0o444,
    );
    r
}

#[test]
fn freebsd_stock_defaults_run_sendmail_and_harden_appends_no() {
    // Stock FreeBSD: rc.conf never mentions sendmail, yet defaults start the submit daemon.
    let r = freebsd("fbsd-stock", "hostname=\"lab1\"\nifconfig_em0=\"DHCP\"\n");
    let c = check(&r);
    let e = facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot);
    assert_eq!(e.len(), 2, "{e:?}"); // submit + msp queue runner
    assert!(
        e.iter()
            .all(|f| f.evidence.starts_with("/etc/defaults/rc.conf:"))
    );
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rc = r.read("/etc/rc.conf");
    assert!(rc.starts_with("hostname=\"lab1\"\nifconfig_em0=\"DHCP\"\n"));
    for v in [
        "sendmail_submit_enable",
        "sendmail_outbound_enable",
        "sendmail_msp_queue_enable",
    ] {
        assert!(rc.contains(&format!("{v}=\"NO\"\n")), "{rc}");
    }
    assert_eq!(
        r.read("/etc/defaults/rc.conf"),
        FREEBSD_DEFAULTS,
        "defaults untouched"
    );
    assert!(facts(&check(&r), Mta::Sendmail, FactKind::EnabledAtBoot).is_empty());
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(stdout(&o).contains("nothing to change"));
    run(&["revert", "--root", &r.arg()]);
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn freebsd_last_assignment_wins_across_files_and_case() {
    let r = freebsd(
        "fbsd-layers",
        "# lab machine\nsendmail_enable=\"NO\"\nsendmail_enable='yes'\t# re-enabled after power cut\npostfix_enable=no\n",
    );
    // rc.conf.local is a symlink (absolute target: resolved inside the root, not on the host).
    r.write(
        "/usr/local/etc/lab-rc.conf",
        "postfix_enable=\"On\"  # port\n",
        0o600,
    );
    r.link("/etc/rc.conf.local", "/usr/local/etc/lab-rc.conf");
    r.write(
        "/etc/rc.conf.d/sendmail",
        "sendmail_msp_queue_enable=\"NO\"\n",
        0o644,
    );
    r.write("/usr/local/etc/rc.d/postfix", "#!/bin/sh\n", 0o555);
    let c = check(&r);
    let s = facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].evidence, "/etc/rc.conf:3");
    let p = facts(&c, Mta::Postfix, FactKind::EnabledAtBoot);
    assert_eq!(p[0].evidence, "/etc/rc.conf.local:1");
    let before = tree(&r.0);
    run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    // sysrc semantics: the LAST assignment is edited in place, quoting and comment kept.
    let rc = r.read("/etc/rc.conf");
    assert!(
        rc.contains("sendmail_enable=\"NO\"\nsendmail_enable='NO'\t# re-enabled after power cut\n"),
        "{rc}"
    );
    assert!(
        rc.ends_with("sendmail_submit_enable=\"NO\"\nsendmail_outbound_enable=\"NO\"\n"),
        "{rc}"
    );
    assert_eq!(
        r.read("/usr/local/etc/lab-rc.conf"),
        "postfix_enable=\"NO\"  # port\n"
    );
    let link = std::fs::read_link(r.p("/etc/rc.conf.local")).unwrap();
    assert_eq!(
        link.display().to_string(),
        "/usr/local/etc/lab-rc.conf",
        "link kept"
    );
    let c = check(&r);
    assert!(facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot).is_empty());
    assert!(facts(&c, Mta::Postfix, FactKind::EnabledAtBoot).is_empty());
    run(&["revert", "--root", &r.arg()]);
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn freebsd_none_disables_everything() {
    let r = freebsd("fbsd-none", "sendmail_enable=\"none\"\n");
    let c = check(&r);
    assert!(facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot).is_empty());
    assert_eq!(
        facts(&c, Mta::Sendmail, FactKind::DisabledAtBoot)[0].evidence,
        "/etc/rc.conf:1"
    );
}

#[test]
fn freebsd_expansion_is_a_clear_error_and_nothing_changes() {
    let r = freebsd("fbsd-expand", "sendmail_enable=\"$(cat /etc/want_mail)\"\n");
    let c = check(&r);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("/etc/rc.conf:1") && w.contains("expansion")),
        "{:?}",
        c.warnings
    );
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("left untouched"));
    assert_same_tree(&before, &tree(&r.0));
    let r2 = freebsd("fbsd-unterminated", "sendmail_enable=\"YES\n");
    assert!(
        check(&r2)
            .warnings
            .iter()
            .any(|w| w.contains("unterminated"))
    );
}

const INETD: &str = "# /etc/inetd.conf\nftp\tstream\ttcp\tnowait\troot\t/usr/sbin/in.ftpd\tin.ftpd\n\
smtp stream tcp nowait qmaild /usr/sbin/tcpd /var/qmail/bin/tcp-env /var/qmail/bin/qmail-smtpd\n\
#submission stream tcp nowait root /usr/sbin/exim4 exim4 -bs\n";

const XINETD_CONF: &str =
    "defaults\n{\n\tinstances = 60\n\tdisabled = smtps\n}\n\nincludedir /etc/xinetd.d\n";

const SMTP_PSA: &str = "service smtp\n{\n\tsocket_type     = stream\n\tprotocol        = tcp\n\twait            = no\n\tdisable         = no\n\tuser            = root\n\tinstances       = UNLIMITED\n\tserver          = /var/qmail/bin/tcp-env\n\tserver_args     = /usr/sbin/rblsmtpd -r bl.spamcop.net /var/qmail/bin/relaylock /var/qmail/bin/qmail-smtpd /var/qmail/bin/smtp_auth /var/qmail/bin/true /var/qmail/bin/cmd5checkpw /var/qmail/bin/true\n}\n";

#[test]
fn inetd_and_xinetd() {
    let r = TempRoot::new("inetd");
    r.write("/etc/inetd.conf", INETD, 0o644);
    r.write("/etc/xinetd.conf", XINETD_CONF, 0o644);
    r.write("/etc/xinetd.d/smtp_psa", SMTP_PSA, 0o644);
    r.write(
        "/etc/xinetd.d/submission",
        "service submission\n{\n\tserver = /usr/sbin/exim4\n\tserver_args = -bs\n}\n",
        0o600,
    );
    r.write(
        "/etc/xinetd.d/smtps",
        "service smtps\n{\n\tserver = /usr/sbin/exim4\n}\n",
        0o644,
    );
    r.write(
        "/etc/xinetd.d/smtp.rpmsave",
        "service smtp\n{\n\tserver = /usr/sbin/sendmail\n}\n",
        0o644,
    );
    let c = check(&r);
    let q = facts(&c, Mta::Qmail, FactKind::EnabledAtBoot);
    assert!(
        q.iter()
            .any(|f| f.mechanism == Some(Mechanism::Inetd) && f.evidence == "/etc/inetd.conf:3"),
        "{q:?}"
    );
    assert!(q.iter().any(|f| f.mechanism == Some(Mechanism::Xinetd)
        && f.evidence.starts_with("/etc/xinetd.d/smtp_psa")));
    let ex = facts(&c, Mta::Exim, FactKind::EnabledAtBoot);
    assert_eq!(ex.len(), 1, "submission (no disable attr) enabled: {ex:?}");
    let exd = facts(&c, Mta::Exim, FactKind::DisabledAtBoot);
    assert!(
        exd.iter().any(|f| f.detail.contains("defaults 'disabled'")),
        "{exd:?}"
    );
    assert!(
        exd.iter().any(|f| f.mechanism == Some(Mechanism::Inetd)),
        "commented inetd line"
    );
    assert!(
        facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot).is_empty(),
        "files with a dot are ignored"
    );

    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let inetd = r.read("/etc/inetd.conf");
    assert!(
        inetd.contains("\n#relayguard-agent# smtp stream tcp nowait qmaild"),
        "{inetd}"
    );
    assert!(inetd.contains("\nftp\tstream"), "other services untouched");
    assert!(
        r.read("/etc/xinetd.d/smtp_psa")
            .contains("\tdisable         = yes\n")
    );
    assert!(
        r.read("/etc/xinetd.d/submission")
            .contains("\tdisable         = yes\n}\n")
    );
    let c = check(&r);
    assert!(
        c.findings.iter().all(|f| f.fact != FactKind::EnabledAtBoot),
        "{:?}",
        c.findings
    );
    run(&["revert", "--root", &r.arg()]);
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn xinetd_enabled_list_and_malformed_files() {
    let r = TempRoot::new("xinetd-bad");
    r.write(
        "/etc/xinetd.conf",
        "defaults\n{\n\tenabled = ftp\n}\nincludedir /etc/xinetd.d\n",
        0o644,
    );
    r.write(
        "/etc/xinetd.d/smtp",
        "service smtp\n{\n\tserver = /usr/sbin/exim4\n}\n",
        0o644,
    );
    r.write(
        "/etc/xinetd.d/broken",
        "service submission\n{\n\tserver = /usr/sbin/exim4\n",
        0o644,
    );
    std::fs::write(r.p("/etc/inetd.conf"), b"smtp\xff\xfe\x00junk\n").unwrap();
    let c = check(&r);
    assert!(facts(&c, Mta::Exim, FactKind::EnabledAtBoot).is_empty());
    assert!(
        facts(&c, Mta::Exim, FactKind::DisabledAtBoot)[0]
            .detail
            .contains("not in")
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("/etc/xinetd.d/broken") && w.contains("unterminated")),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("/etc/inetd.conf") && w.contains("UTF-8")),
        "{:?}",
        c.warnings
    );
    let before = tree(&r.0);
    run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert_same_tree(&before, &tree(&r.0));
}

const QMAIL_SMTPD_RUN: &str = "#!/bin/sh\nQMAILDUID=`id -u qmaild`\nNOFILESGID=`id -g qmaild`\nMAXSMTPD=`cat /var/qmail/control/concurrencyincoming`\nLOCAL=`head -1 /var/qmail/control/me`\nexec /usr/local/bin/softlimit -m 2000000 \\\n    /usr/local/bin/tcpserver -v -R -l \"$LOCAL\" -x /etc/tcp.smtp.cdb -c \"$MAXSMTPD\" \\\n    -u \"$QMAILDUID\" -g \"$NOFILESGID\" 0 smtp /var/qmail/bin/qmail-smtpd 2>&1\n";

#[test]
fn daemontools_qmail_and_runit_postfix() {
    let r = TempRoot::new("supervise");
    r.write(
        "/var/qmail/supervise/qmail-smtpd/run",
        QMAIL_SMTPD_RUN,
        0o755,
    );
    r.write(
        "/var/qmail/supervise/qmail-send/run",
        "#!/bin/sh\nexec /var/qmail/rc\n",
        0o755,
    );
    r.write("/var/qmail/bin/qmail-send", "", 0o755);
    r.link("/service/qmail-smtpd", "/var/qmail/supervise/qmail-smtpd");
    r.link("/service/qmail-send", "/var/qmail/supervise/qmail-send");
    r.write(
        "/etc/sv/postfix/run",
        "#!/bin/sh\nexec postfix start-fg\n",
        0o755,
    );
    r.write(
        "/etc/sv/exim/run",
        "#!/bin/sh\nexec exim -bdf -q30m\n",
        0o755,
    );
    r.write("/etc/sv/exim/down", "", 0o644);
    r.link("/var/service/postfix", "/etc/sv/postfix");
    r.link("/var/service/exim", "/etc/sv/exim");
    let c = check(&r);
    let q = facts(&c, Mta::Qmail, FactKind::EnabledAtBoot);
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q.iter().any(|f| f.mechanism == Some(Mechanism::Daemontools)
            && f.detail.contains("tcpserver on 0:25 (exposed)")),
        "{q:?}"
    );
    assert_eq!(
        facts(&c, Mta::Postfix, FactKind::EnabledAtBoot)[0].mechanism,
        Some(Mechanism::Runit)
    );
    assert!(!facts(&c, Mta::Exim, FactKind::DisabledAtBoot).is_empty());
    let before = tree(&r.0);
    run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(r.p("/var/qmail/supervise/qmail-smtpd/down").exists());
    assert!(r.p("/etc/sv/postfix/down").exists());
    let c = check(&r);
    assert!(c.findings.iter().all(|f| f.fact != FactKind::EnabledAtBoot));
    run(&["revert", "--root", &r.arg()]);
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn openrc_slackware_solaris_sunos() {
    let r = TempRoot::new("legacy");
    // OpenRC (Alpine/Gentoo)
    r.write("/etc/init.d/postfix", "#!/sbin/openrc-run\n", 0o755);
    r.link("/etc/runlevels/default/postfix", "/etc/init.d/postfix");
    // Slackware
    r.write(
        "/etc/rc.d/rc.sendmail",
        "#!/bin/sh\n/usr/sbin/sendmail -L sm-mta -bd -q25m\n",
        0o755,
    );
    r.write("/etc/rc.d/rc.postfix", "#!/bin/sh\n", 0o644);
    // Solaris 8: S88sendmail is a hard link of /etc/init.d/sendmail; default runlevel 3
    r.write(
        "/etc/init.d/sendmail",
        "#!/sbin/sh\n/usr/lib/sendmail -bd -q15m &\n",
        0o744,
    );
    std::fs::create_dir_all(r.p("/etc/rc2.d")).unwrap();
    std::fs::hard_link(r.p("/etc/init.d/sendmail"), r.p("/etc/rc2.d/S88sendmail")).unwrap();
    r.write(
        "/etc/inittab",
        "ap::sysinit:/sbin/autopush -f /etc/iu.ap\nis:3:initdefault:\n",
        0o644,
    );
    // SunOS 4.x rc.local block
    let rc_local = "#\n# @(#)rc.local 1.116 91/05/10 SMI\n#\nif [ -f /usr/lib/sendmail -a -f /etc/sendmail.cf ]; then\n\t(cd /var/spool/mqueue; rm -f nf* lf*)\n\t/usr/lib/sendmail -bd -q1h; echo -n ' sendmail'\nfi\necho 'starting local daemons:'\n";
    r.write("/etc/rc.local", rc_local, 0o755);
    let c = check(&r);
    let pf = facts(&c, Mta::Postfix, FactKind::EnabledAtBoot);
    assert_eq!(pf.len(), 1);
    assert_eq!(pf[0].mechanism, Some(Mechanism::Openrc));
    assert!(
        !facts(&c, Mta::Postfix, FactKind::DisabledAtBoot).is_empty(),
        "rc.postfix not executable"
    );
    let sm = facts(&c, Mta::Sendmail, FactKind::EnabledAtBoot);
    assert!(sm.iter().any(|f| f.mechanism == Some(Mechanism::Slackware)));
    assert!(
        sm.iter().any(|f| f.mechanism == Some(Mechanism::Sysv)
            && f.detail.contains("Solaris style")
            && f.detail.contains("default runlevel is 3")),
        "{sm:?}"
    );
    assert!(
        sm.iter()
            .any(|f| f.mechanism == Some(Mechanism::RcLocal) && f.evidence == "/etc/rc.local:4")
    );

    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!r.p("/etc/runlevels/default/postfix").exists());
    assert!(r.p("/etc/rc2.d/K88sendmail").exists() && !r.p("/etc/rc2.d/S88sendmail").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(r.p("/etc/rc.d/rc.sendmail"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    let local = r.read("/etc/rc.local");
    assert!(
        local.contains("#relayguard-agent# if [ -f /usr/lib/sendmail"),
        "{local}"
    );
    assert!(
        local.contains("#relayguard-agent# fi\n")
            && local.contains("\necho 'starting local daemons:'\n")
    );
    let c = check(&r);
    assert!(
        c.findings.iter().all(|f| f.fact != FactKind::EnabledAtBoot),
        "{:?}",
        c.findings
    );
    run(&["revert", "--root", &r.arg()]);
    assert_same_tree(&before, &tree(&r.0));
    // Revert renames back: the Solaris hard link to /etc/init.d/sendmail survives.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(r.p("/etc/rc2.d/S88sendmail"))
            .unwrap()
            .ino(),
        std::fs::metadata(r.p("/etc/init.d/sendmail"))
            .unwrap()
            .ino()
    );
}

#[test]
fn systemd_socket_unit_on_port_25() {
    let r = TempRoot::new("socket");
    r.write("/etc/systemd/system/qmail-smtpd.socket", "[Unit]\nDescription=qmail SMTP\n\n[Socket]\nListenStream=0.0.0.0:25\nAccept=yes\n\n[Install]\nWantedBy=sockets.target\n", 0o644);
    r.write("/etc/systemd/system/qmail-smtpd@.service", "[Service]\nExecStart=/var/qmail/bin/tcp-env /var/qmail/bin/qmail-smtpd\nStandardInput=socket\n", 0o644);
    r.write(
        "/etc/systemd/system/relay.socket",
        "[Socket]\nListenStream=[::1]:587\n",
        0o644,
    );
    r.link(
        "/etc/systemd/system/sockets.target.wants/qmail-smtpd.socket",
        "/etc/systemd/system/qmail-smtpd.socket",
    );
    r.link(
        "/etc/systemd/system/sockets.target.wants/relay.socket",
        "/etc/systemd/system/relay.socket",
    );
    let c = check(&r);
    let q = facts(&c, Mta::Qmail, FactKind::EnabledAtBoot);
    assert_eq!(q[0].mechanism, Some(Mechanism::SystemdSocket));
    assert!(
        facts(&c, Mta::Qmail, FactKind::Installed)
            .iter()
            .any(|f| f.detail.contains("exposed"))
    );
    assert!(
        facts(&c, Mta::Unknown, FactKind::Installed)
            .iter()
            .any(|f| f.detail.contains("loopback only"))
    );
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The socket unit file itself lives in /etc: it is not replaced by a mask, only unlinked.
    assert!(
        !r.p("/etc/systemd/system/sockets.target.wants/qmail-smtpd.socket")
            .exists()
    );
    assert!(stdout(&o).contains("not masking qmail-smtpd.socket"));
    assert_eq!(systemctl_is_enabled(&r, "qmail-smtpd.socket"), "disabled");
    run(&["revert", "--root", &r.arg()]);
    assert_same_tree(&before, &tree(&r.0));
}

/// OpenBSD 6.7's /etc/rc.conf (rc.conf,v 1.220), the daemon section shortened.
const OPENBSD_RC_CONF: &str = "#\t$OpenBSD: rc.conf,v 1.220 2020/01/24 06:17:37 tedu Exp $

# DO NOT EDIT THIS FILE!!
#
# This file defines the default service selection as shipped in a
# release.  Upgrades of your system will modify this file.
#
# To select the service options you desire, please override these
# options in the file /etc/rc.conf.local
#
# DO NOT EDIT THIS FILE!!

# Set these variables to \"NO\" to turn the respective service off.
# Set them to \"\" to run them with the default flags.
# Otherwise, these variables override the default flags.
apmd_flags=NO
cron_flags=
httpd_flags=NO
ntpd_flags=
pflogd_flags=\t\t# add more flags, e.g. \"-s 256\"
slaacd_flags=
smtpd_flags=
sndiod_flags=
spamd_flags=NO\t\t# also see spamd_black below
sshd_flags=
syslogd_flags=\t\t# add more flags, e.g. \"-u -a /chroot/dev/log\"

# set the following to \"YES\" to turn them on
pf=YES\t\t\t# Packet filter / NAT
check_quotas=YES\t# NO may be desirable in some YP environments

# rc.d(8) packages scripts
# started in the specified order and stopped in reverse order
pkg_scripts=
";

/// OpenBSD's /etc/mail/smtpd.conf as installed (smtpd.conf,v 1.14).
const OPENBSD_SMTPD_CONF: &str = "#\t$OpenBSD: smtpd.conf,v 1.14 2019/11/26 20:14:38 gilles Exp $

# This is the smtpd server system-wide configuration file.
# See smtpd.conf(5) for more information.

table aliases file:/etc/mail/aliases

listen on socket

# To accept external mail, replace with: listen on all
#
listen on lo0

action \"local_mail\" mbox alias <aliases>
action \"outbound\" relay

# Uncomment the following to accept external mail for domain \"example.org\"
#
# match from any for domain \"example.org\" action \"local_mail\"
match from local for local action \"local_mail\"
match from local for any action \"outbound\"
";

fn openbsd(name: &str, smtpd_conf: &str) -> TempRoot {
    let r = TempRoot::new(name);
    r.write("/etc/rc.conf", OPENBSD_RC_CONF, 0o644);
    r.write("/etc/mail/smtpd.conf", smtpd_conf, 0o644);
    r.write(
        "/etc/rc.d/smtpd",
        "#!/bin/ksh\n\ndaemon=\"/usr/sbin/smtpd\"\n\n. /etc/rc.d/rc.subr\n\nrc_cmd $1\n",
        0o555,
    );
    r.write("/etc/rc.d/rc.subr", "#!/bin/ksh\n", 0o644);
    r.write("/usr/sbin/smtpctl", "", 0o555);
    r
}

const RC_CONF_SMTPD_LINE: &str = "/etc/rc.conf:22";

#[test]
fn openbsd_stock_smtpd_on_lo0_is_left_alone() {
    let r = openbsd("obsd-stock", OPENBSD_SMTPD_CONF);
    let o = run(&["check", "--root", &r.arg()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let c = check(&r);
    assert!(facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot).is_empty());
    let l = facts(&c, Mta::Opensmtpd, FactKind::LoopbackOnly);
    assert!(
        l.iter().any(|f| f.mechanism == Some(Mechanism::RcConf)
            && f.evidence == RC_CONF_SMTPD_LINE
            && f.detail.contains("listens on socket, lo0 only")),
        "{l:?}"
    );
    assert!(
        l.iter().any(|f| f.mechanism == Some(Mechanism::Config)
            && f.evidence.starts_with("/etc/mail/smtpd.conf:")),
        "{l:?}"
    );
    let before = tree(&r.0);
    for mode in ["disable", "loopback-only"] {
        let o = run(&[
            "harden",
            "--root",
            &r.arg(),
            "--role",
            "non-mail",
            "--mode",
            mode,
        ]);
        assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
        assert_same_tree(&before, &tree(&r.0));
    }
}

#[test]
fn openbsd_listen_on_all_is_disabled_in_rc_conf_local() {
    let conf = OPENBSD_SMTPD_CONF.replace("\nlisten on lo0\n", "\nlisten on all\n");
    let r = openbsd("obsd-all", &conf);
    let c = check(&r);
    let e = facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].evidence, RC_CONF_SMTPD_LINE);
    assert!(
        e[0].detail
            .contains("/etc/mail/smtpd.conf:12 listens on all"),
        "{e:?}"
    );
    assert_eq!(
        facts(&c, Mta::Opensmtpd, FactKind::Exposed)[0].evidence,
        "/etc/mail/smtpd.conf:12"
    );
    let before = tree(&r.0);

    // A crash after the journal line, before the change: revert restores everything.
    let o = run_env(
        &["harden", "--root", &r.arg(), "--role", "non-mail"],
        &[("RELAYGUARD_AGENT_CRASH_AFTER_JOURNAL", "1")],
    );
    assert!(!o.status.success());
    assert!(run(&["revert", "--root", &r.arg()]).status.success());
    assert_same_tree(&before, &tree(&r.0));

    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("rcctl stop smtpd"), "{}", stdout(&o));
    assert_eq!(r.read("/etc/rc.conf.local"), "smtpd_flags=NO\n");
    assert_eq!(
        r.read("/etc/rc.conf"),
        OPENBSD_RC_CONF,
        "rc.conf is not edited"
    );
    let c = check(&r);
    assert!(facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot).is_empty());
    assert_eq!(
        facts(&c, Mta::Opensmtpd, FactKind::DisabledAtBoot)[0].evidence,
        "/etc/rc.conf.local:1"
    );
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(stdout(&o).contains("nothing to change"));
    assert!(run(&["revert", "--root", &r.arg()]).status.success());
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn openbsd_rc_conf_local_last_assignment_wins() {
    let conf = OPENBSD_SMTPD_CONF.replace(
        "\nlisten on lo0\n",
        "\nlisten on lo0\nlisten on 127.0.0.1 port 10028 tag DKIM\nlisten on egress port submission\n",
    );
    let r = openbsd("obsd-local", &conf);
    // Switched off, then back on by a later line (quotes are dropped by /etc/rc).
    r.write(
        "/etc/rc.conf.local",
        "smtpd_flags=NO\npkg_scripts=dovecot\nsmtpd_flags=\"\"",
        0o600,
    );
    let c = check(&r);
    let e = facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].evidence, "/etc/rc.conf.local:3");
    assert!(e[0].detail.contains(":14 listens on egress"), "{e:?}");
    let before = tree(&r.0);
    // loopback-only keeps smtpd and moves its external listener to localhost.
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
    let edited = r.read("/etc/mail/smtpd.conf");
    assert!(
        edited.contains("\nlisten on lo0\nlisten on 127.0.0.1 port 10028 tag DKIM\nlisten on localhost port submission\n"),
        "{edited}"
    );
    assert!(facts(&check(&r), Mta::Opensmtpd, FactKind::EnabledAtBoot).is_empty());
    assert!(run(&["revert", "--root", &r.arg()]).status.success());
    assert_same_tree(&before, &tree(&r.0));
    // disable mode: appended after the unterminated last line, mode 0600 kept.
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        r.read("/etc/rc.conf.local"),
        "smtpd_flags=NO\npkg_scripts=dovecot\nsmtpd_flags=\"\"\nsmtpd_flags=NO\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(r.p("/etc/rc.conf.local"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(run(&["revert", "--root", &r.arg()]).status.success());
    assert_same_tree(&before, &tree(&r.0));
}

#[test]
fn openbsd_disabled_and_addresses() {
    let conf = OPENBSD_SMTPD_CONF.replace("\nlisten on lo0\n", "\nlisten on 192.0.2.25\n");
    let r = openbsd("obsd-off", &conf);
    r.write("/etc/rc.conf.local", "smtpd_flags=NO\n", 0o644);
    let c = check(&r);
    assert!(facts(&c, Mta::Opensmtpd, FactKind::EnabledAtBoot).is_empty());
    assert_eq!(
        facts(&c, Mta::Opensmtpd, FactKind::DisabledAtBoot)[0].evidence,
        "/etc/rc.conf.local:1"
    );
    assert!(
        facts(&c, Mta::Opensmtpd, FactKind::Exposed)[0]
            .detail
            .contains("192.0.2.25")
    );
    let before = tree(&r.0);
    let o = run(&["harden", "--root", &r.arg(), "--role", "non-mail"]);
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert_same_tree(&before, &tree(&r.0));
}
