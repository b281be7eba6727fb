//! Processes from `/proc/PID/{exe,cmdline,stat}`.
//!
//! The 15-character `comm` is never trusted alone (`master`, `smtpd`, `tcpserver` are
//! ambiguous); we classify by the executable path, then the full command line (sendmail and
//! OpenSMTPD rewrite argv to e.g. `sendmail: accepting connections`, `smtpd: pony express`).

use std::fs;
use std::path::Path;

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use crate::detect::Detection;
use crate::mta::classify_program;

/// One process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Executable path (empty when unreadable, e.g. kernel threads).
    pub exe: String,
    /// Command line, arguments joined by spaces.
    pub cmdline: String,
    /// The MTA this process belongs to, if any.
    pub mta: Option<Mta>,
}

/// Classifies a process from its executable and command line.
pub fn classify(exe: &str, cmdline: &str) -> Option<Mta> {
    // OpenSMTPD's binary is plain /usr/sbin/smtpd; Postfix's smtpd lives under .../postfix/.
    if exe.ends_with("/sbin/smtpd") && !exe.contains("postfix") {
        return Some(Mta::Opensmtpd);
    }
    if let Some(m) = classify_program(exe) {
        return Some(m);
    }
    // argv[0] is what sendmail/OpenSMTPD rewrite ("sendmail: accepting connections"); the rest
    // of the command line only counts for generic TCP launchers (tcpserver ... qmail-smtpd) or
    // when exe is unreadable — otherwise `strace postfix start` or `vi /etc/postfix/main.cf`
    // would count as Postfix running.
    let argv0 = cmdline.split_whitespace().next().unwrap_or("");
    let base = exe.rsplit('/').next().unwrap_or("");
    classify_program(argv0).or_else(|| {
        (exe.is_empty()
            || [
                "tcpserver",
                "tcpsvd",
                "sslserver",
                "s6-tcpserver",
                "tcp-env",
            ]
            .contains(&base))
        .then(|| classify_program(cmdline))
        .flatten()
    })
}

/// Parses the ppid from `/proc/PID/stat` (the field after the parenthesised comm, which may
/// itself contain spaces and parentheses).
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Reads all processes under `proc_dir`. Processes that vanish while being read are skipped.
pub fn scan(proc_dir: &Path) -> Vec<Proc> {
    let Ok(rd) = fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let base = e.path();
        let exe = fs::read_link(base.join("exe"))
            .map(|p| {
                p.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string()
            })
            .unwrap_or_default();
        let cmdline = fs::read(base.join("cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let ppid = fs::read_to_string(base.join("stat"))
            .ok()
            .and_then(|s| parse_ppid(&s))
            .unwrap_or(0);
        let mta = classify(&exe, &cmdline);
        out.push(Proc {
            pid,
            ppid,
            exe,
            cmdline,
            mta,
        });
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// Adds a Running finding for every MTA process.
pub fn report(procs: &[Proc], d: &mut Detection) {
    for p in procs {
        let Some(mta) = p.mta else { continue };
        let parent = procs
            .iter()
            .find(|q| q.pid == p.ppid)
            .map(|q| {
                format!(
                    "{} ({})",
                    q.pid,
                    if q.exe.is_empty() { &q.cmdline } else { &q.exe }
                )
            })
            .unwrap_or_else(|| p.ppid.to_string());
        d.fact(
            mta,
            FactKind::Running,
            Some(Mechanism::Process),
            format!("pid {}", p.pid),
            format!("exe {} cmdline {:?} parent {parent}", p.exe, p.cmdline),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_and_classification() {
        assert_eq!(parse_ppid("123 (smtpd: pony) (x)) S 45 1 1"), Some(45));
        assert_eq!(
            classify("/usr/sbin/smtpd", "smtpd: pony express"),
            Some(Mta::Opensmtpd)
        );
        assert_eq!(
            classify("/usr/lib/postfix/sbin/smtpd", "smtpd -n smtp -t inet"),
            Some(Mta::Postfix)
        );
        assert_eq!(
            classify(
                "/usr/lib/postfix/sbin/master",
                "/usr/lib/postfix/sbin/master -w"
            ),
            Some(Mta::Postfix)
        );
        assert_eq!(
            classify(
                "/usr/bin/tcpserver",
                "tcpserver 0 smtp /var/qmail/bin/qmail-smtpd"
            ),
            Some(Mta::Qmail)
        );
        assert_eq!(classify("/usr/bin/tcpserver", "tcpserver 0 80 httpd"), None);
        assert_eq!(classify("/usr/sbin/nginx", "nginx: master process"), None);
        assert_eq!(classify("/usr/bin/strace", "strace -f postfix start"), None);
        assert_eq!(
            classify(
                "/usr/sbin/sendmail-mta",
                "sendmail: MTA: accepting connections"
            ),
            Some(Mta::Sendmail)
        );
        assert_eq!(
            classify("/usr/bin/python3.11", "/usr/lib/postfix/sbin/master -w"),
            Some(Mta::Postfix)
        );
    }

    #[test]
    fn scans_own_proc() {
        let procs = scan(Path::new("/proc"));
        assert!(procs.iter().any(|p| p.pid == std::process::id()));
    }
}
