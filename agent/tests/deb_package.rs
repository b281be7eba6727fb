//! The agent's Debian package, built by dist/build-deb.sh with plain dpkg-deb, then installed
//! with the real dpkg into a root built from real Debian packages (`dpkg --root DIR
//! --force-script-chrootless`, which runs the maintainer scripts with DPKG_ROOT=DIR): its
//! postinst enables the timer the way debhelper's scripts do, so `systemctl --root DIR
//! is-enabled` says enabled; remove masks it, purge leaves nothing behind.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn sh(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("run");
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `dpkg --root ROOT --force-script-chrootless ARGS`.
fn dpkg(r: &TempRoot, args: &[&str]) -> Output {
    sh(Command::new("dpkg")
        .arg(format!("--root={}", r.arg()))
        .arg("--force-script-chrootless")
        .args(args))
}

#[test]
fn deb_builds_installs_into_a_root_and_enables_the_timer() {
    let out = TempRoot::new("deb-out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/build-deb.sh");
    let built = sh(Command::new("sh")
        .env("RELAYGUARD_DEB_COMPRESS", "gzip")
        .arg(&script)
        .arg(BIN)
        .arg(&out.0));
    let deb = text(&built).trim().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.ends_with(&format!("relayguard-agent_{version}_amd64.deb"))
            || deb.contains(&format!("relayguard-agent_{version}_")),
        "{deb}"
    );

    let info = text(&sh(Command::new("dpkg-deb").args(["--info", &deb])));
    for want in [
        "Package: relayguard-agent",
        &format!("Version: {version}"),
        "Section: admin",
        " postinst ",
        " prerm ",
        " postrm ",
        " conffiles ",
    ] {
        assert!(info.contains(want), "--info lacks {want:?}:\n{info}");
    }
    let contents = text(&sh(Command::new("dpkg-deb").args(["--contents", &deb])));
    for (mode, path) in [
        ("-rwxr-xr-x root/root", "./usr/sbin/relayguard-agent"),
        (
            "-rw-r--r-- root/root",
            "./lib/systemd/system/relayguard-agent.service",
        ),
        (
            "-rw-r--r-- root/root",
            "./lib/systemd/system/relayguard-agent.timer",
        ),
        ("-rw------- root/root", "./etc/relayguard-agent/agent.env"),
    ] {
        assert!(
            contents
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "--contents lacks {mode} {path}:\n{contents}"
        );
    }
    assert!(!contents.contains("/usr/local"), "{contents}");
    let control = text(&sh(Command::new("dpkg-deb").args(["-f", &deb, "Depends"])));
    assert!(
        control.trim().is_empty() || control.trim() == "libc6",
        "{control}"
    );

    // A real Debian root (systemd's own units included) with an empty dpkg database that knows
    // the host's real libc6, which the package depends on.
    let r = debian_root("deb-install");
    std::fs::create_dir_all(r.p("/var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(r.p("/var/lib/dpkg/updates")).unwrap();
    let libc = text(&sh(Command::new("dpkg-query").args(["-s", "libc6"])));
    std::fs::write(r.p("/var/lib/dpkg/status"), format!("{libc}\n")).unwrap();
    let arch = text(&sh(Command::new("dpkg").arg("--print-architecture")));
    std::fs::write(
        r.p(&format!("/var/lib/dpkg/info/libc6:{}.list", arch.trim())),
        "",
    )
    .unwrap();
    assert_ne!(
        systemctl_is_enabled(&r, "relayguard-agent.timer"),
        "enabled"
    );

    dpkg(&r, &["-i", &deb]);
    let status = text(&dpkg(&r, &["-s", "relayguard-agent"]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert_eq!(
        systemctl_is_enabled(&r, "relayguard-agent.timer"),
        "enabled"
    );
    assert_eq!(
        std::fs::read_link(r.p("/etc/systemd/system/timers.target.wants/relayguard-agent.timer"))
            .unwrap()
            .display()
            .to_string(),
        "/lib/systemd/system/relayguard-agent.timer"
    );
    // The installed units are valid for the real systemd of that root, and point at the
    // installed binary, which runs.
    let v = sh(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.arg()))
        .args(["relayguard-agent.service", "relayguard-agent.timer"]));
    assert!(
        String::from_utf8_lossy(&v.stderr).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(
        r.read("/lib/systemd/system/relayguard-agent.service")
            .contains("ExecStart=/usr/sbin/relayguard-agent report")
    );
    let o = Command::new(r.p("/usr/sbin/relayguard-agent"))
        .args(["check", "--root", &r.arg()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "the MTAs of the root are found");

    // remove: the timer is masked (the conffile stays); purge: nothing of it is left.
    dpkg(&r, &["-r", "relayguard-agent"]);
    assert_eq!(systemctl_is_enabled(&r, "relayguard-agent.timer"), "masked");
    assert!(r.p("/etc/relayguard-agent/agent.env").exists());
    dpkg(&r, &["-P", "relayguard-agent"]);
    for gone in [
        "/etc/systemd/system/timers.target.wants/relayguard-agent.timer",
        "/etc/systemd/system/relayguard-agent.timer",
        "/etc/relayguard-agent",
        "/usr/sbin/relayguard-agent",
        "/var/lib/systemd/deb-systemd-helper-enabled/relayguard-agent.timer.dsh-also",
    ] {
        assert!(!r.p(gone).exists(), "{gone} left after purge");
    }
}
