//! runit and daemontools service directories.
//!
//! A service is started when its directory is linked into a scan directory watched by
//! runsvdir/svscan, unless the service directory contains a `down` file. qmail's SMTP listener
//! is `tcpserver ... HOST smtp qmail-smtpd` in the `run` script: HOST `0` means all interfaces.

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::unitfile::is_loopback_addr;
use super::{Action, Detection};
use crate::mta::{classify_program, classify_service_name, smtp_port_of_service};
use crate::root::{Root, join};

/// Scan directories: (inside path, mechanism).
const SCAN_DIRS: [(&str, Mechanism); 6] = [
    ("/service", Mechanism::Daemontools),
    ("/etc/service", Mechanism::Runit),
    ("/var/service", Mechanism::Runit),
    ("/etc/runit/runsvdir/default", Mechanism::Runit),
    ("/run/runit/service", Mechanism::Runit),
    ("/command/service", Mechanism::Daemontools),
];

/// Options of tcpserver that take an argument (everything else is a flag).
const TCPSERVER_ARG_OPTS: &str = "cxbgulBtTi";

/// Extracts (host, port) from a tcpserver command line in a run script.
pub fn tcpserver_listen(run: &str) -> Option<(String, u16)> {
    // Run scripts split long exec lines with backslash-newline.
    let joined = run.replace("\\\n", " ");
    for line in joined.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        let Some(pos) = words.iter().position(|w| w.ends_with("tcpserver")) else {
            continue;
        };
        let mut i = pos + 1;
        while i < words.len() && words[i].starts_with('-') {
            let opt = &words[i][1..];
            // `-c 20` or `-c20`: only a bare option letter takes the next word.
            if opt.len() == 1 && TCPSERVER_ARG_OPTS.contains(opt) {
                i += 1;
            }
            i += 1;
        }
        let host = words.get(i)?.trim_matches('"').to_string();
        let port = smtp_port_of_service(words.get(i + 1)?.trim_matches('"'))?;
        return Some((host, port));
    }
    None
}

/// Runs the runit/daemontools detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    let mut seen: Vec<String> = Vec::new();
    for (scan, default_mech) in SCAN_DIRS {
        if !root.is_dir(scan) {
            continue;
        }
        // /etc/service belongs to daemontools when runit is absent (Debian daemontools-run).
        let mech = if scan == "/etc/service"
            && !root.exists("/usr/bin/runsvdir")
            && !root.exists("/sbin/runsvdir")
            && (root.exists("/usr/bin/svscan") || root.exists("/command/svscan"))
        {
            Mechanism::Daemontools
        } else {
            default_mech
        };
        for name in root.list_dir(scan) {
            if name.starts_with('.') {
                continue;
            }
            let entry = join(scan, &name);
            let dir = root.resolve(&entry);
            if !root.is_dir(&dir) || seen.contains(&dir) {
                continue;
            }
            let run_path = join(&dir, "run");
            let run = match root.read_text(&run_path) {
                Ok(r) => r.unwrap_or_default(),
                Err(e) => {
                    d.warn(e.to_string());
                    continue;
                }
            };
            let listen = tcpserver_listen(&run);
            let mta = classify_service_name(&name)
                .or_else(|| classify_program(&run))
                .or(listen.as_ref().map(|_| Mta::Unknown));
            let Some(mta) = mta else { continue };
            seen.push(dir.clone());
            let target = root
                .read_link(&entry)
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            let listen_note = match &listen {
                Some((h, p)) => {
                    let exp = if is_loopback_addr(h) {
                        "loopback only"
                    } else {
                        "exposed"
                    };
                    format!("; run script: tcpserver on {h}:{p} ({exp})")
                }
                None => String::new(),
            };
            let down = join(&dir, "down");
            if root.exists(&down) {
                d.fact(
                    mta,
                    FactKind::DisabledAtBoot,
                    Some(mech),
                    &down,
                    format!("{entry}{target} has a down file{listen_note}"),
                );
            } else {
                d.fact(
                    mta,
                    FactKind::EnabledAtBoot,
                    Some(mech),
                    &entry,
                    format!("service directory {dir}{target}{listen_note}"),
                );
                d.disable(mta, mech, Action::CreateDown { dir });
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpserver_args() {
        let run = "#!/bin/sh\nexec /usr/local/bin/softlimit -m 2000000 /usr/local/bin/tcpserver -v -R -l \"$LOCAL\" -x /etc/tcp.smtp.cdb -c \"$MAXSMTPD\" -u \"$QMAILDUID\" -g \"$NOFILESGID\" 0 smtp /var/qmail/bin/qmail-smtpd 2>&1\n";
        assert_eq!(tcpserver_listen(run), Some(("0".into(), 25)));
        assert_eq!(
            tcpserver_listen("tcpserver -c20 127.0.0.1 587 x"),
            Some(("127.0.0.1".into(), 587))
        );
        assert_eq!(tcpserver_listen("exec qmail-start ./Maildir/"), None);
    }
}
