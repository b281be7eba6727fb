//! Stopping running MTA daemons after hardening (`harden --stop`, live systems only).
//!
//! Boot configuration changes take effect at the next boot; a lab PC that is not rebooted keeps
//! relaying until its daemon is stopped. Under systemd the MTA's units are stopped (so systemd
//! does not restart them); whatever still runs afterwards, or everything on other init systems,
//! gets SIGTERM, which every MTA handles as a clean shutdown. SIGKILL is never sent: a daemon that
//! ignores SIGTERM is reported, not killed mid-write into its queue.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use relayguard_core::agent_report::Mta;

use crate::live::proc::Proc;

/// What stopping one MTA did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The MTA.
    pub mta: Mta,
    /// What was done, for the operator.
    pub actions: Vec<String>,
    /// Processes still running afterwards.
    pub still_running: Vec<u32>,
}

/// The systemd units an MTA runs as on the distributions relayguard knows.
fn units(mta: Mta) -> &'static [&'static str] {
    match mta {
        Mta::Postfix => &["postfix.service", "postfix@-.service"],
        Mta::Exim => &["exim4.service", "exim.service"],
        Mta::Sendmail => &["sendmail.service", "sm-client.service"],
        Mta::Opensmtpd => &["opensmtpd.service", "smtpd.service"],
        Mta::Qmail => &["qmail.service", "qmail-smtpd.socket"],
        // Courier is left running by --stop (agent/README.md, Courier).
        Mta::Courier | Mta::Dma | Mta::Nullmailer | Mta::Unknown => &[],
    }
}

/// The MTAs that listen for mail. Send-only ones (dma, nullmailer) keep running: local mail
/// such as cron output needs them.
pub const LISTENING: [Mta; 5] = [
    Mta::Postfix,
    Mta::Exim,
    Mta::Sendmail,
    Mta::Opensmtpd,
    Mta::Qmail,
];

/// Stops every listening MTA running on this system.
pub fn stop_running(wait: Duration) -> Vec<Stopped> {
    let procs = crate::live::proc::scan(Path::new("/proc"));
    stop(&procs, &LISTENING, systemd_is_init(), wait)
}

/// Whether systemd is the running init (its runtime directory exists).
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether a process is gone: no /proc entry, or a zombie waiting for its parent.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

fn wait_for(pids: &[u32], wait: Duration) -> Vec<u32> {
    let deadline = Instant::now() + wait;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| !gone(*p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the running daemons of each MTA in `targets`, given the process list from
/// [`crate::live::proc::scan`]; waits up to `wait` after each step.
pub fn stop(procs: &[Proc], targets: &[Mta], systemd: bool, wait: Duration) -> Vec<Stopped> {
    let mut out = Vec::new();
    for &mta in targets {
        let mine: Vec<&Proc> = procs.iter().filter(|p| p.mta == Some(mta)).collect();
        if mine.is_empty() {
            continue;
        }
        let mut actions = Vec::new();
        let pids: Vec<u32> = mine.iter().map(|p| p.pid).collect();
        if systemd {
            for unit in units(mta) {
                let ok = Command::new("systemctl")
                    .args(["stop", unit])
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    actions.push(format!("systemctl stop {unit}"));
                }
            }
        }
        let mut alive = wait_for(
            &pids,
            if actions.is_empty() {
                Duration::ZERO
            } else {
                wait
            },
        );
        if !alive.is_empty() {
            // Signal only the top of each process tree: the master stops its own children.
            let tops: Vec<u32> = mine
                .iter()
                .filter(|p| alive.contains(&p.pid) && !pids.contains(&p.ppid))
                .map(|p| p.pid)
                .collect();
            for pid in &tops {
                let ok = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    actions.push(format!("SIGTERM to pid {pid}"));
                }
            }
            alive = wait_for(&alive, wait);
        }
        out.push(Stopped {
            mta,
            actions,
            still_running: alive,
        });
    }
    out
}
