//! Detectors: one module per boot mechanism (plus installed files and MTA configuration).
//!
//! Every detector reads only through [`Root`] and returns a [`Detection`]: findings (facts with
//! the file that proves them), harden targets (how each enabled entry can be switched off), and
//! warnings for files it could not interpret. A malformed file never aborts the whole check: it
//! becomes a warning naming the file and line, and no target is derived from it, so `harden`
//! never edits a file it did not understand.

pub mod config;
pub mod inetd;
pub mod installed;
pub mod launchd;
pub mod master_cf;
pub mod openbsd;
pub mod openrc;
pub mod rcconf;
pub mod rclocal;
pub mod runit;
pub mod slackware;
pub mod smf;
pub mod systemd;
pub mod sysv;
pub mod unitfile;
pub mod xinetd;

use relayguard_core::agent_report::{FactKind, Mechanism, Mta, MtaFact};

use crate::root::Root;

/// A reversible change that would stop one enablement entry from starting an MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Remove a symlink (systemd wants link, OpenRC runlevel link).
    RemoveLink {
        /// Inside path of the link.
        path: String,
    },
    /// Mask a systemd unit: `/etc/systemd/system/UNIT -> /dev/null`.
    Mask {
        /// Unit name, e.g. `postfix.service`.
        unit: String,
    },
    /// Rename a SysV start entry `S##name` to `K##name` (what `update-rc.d disable` does).
    RenameStart {
        /// Inside path of the S entry.
        from: String,
        /// Inside path of the K entry to create.
        to: String,
    },
    /// Set an rc.conf variable with sysrc semantics.
    RcConfSet {
        /// File holding the winning assignment, or `None` to append to `/etc/rc.conf`.
        file: Option<String>,
        /// Variable name.
        var: String,
        /// New value (written in the existing quoting style).
        value: String,
    },
    /// Comment out lines (0-based indices) with the agent's marker.
    CommentLines {
        /// Inside path of the file.
        path: String,
        /// 0-based line indices.
        lines: Vec<usize>,
    },
    /// Set `disable = yes` in an xinetd service block.
    XinetdDisable {
        /// Inside path of the file holding the service.
        path: String,
        /// Service name.
        service: String,
    },
    /// Create an empty `down` file in a runit/daemontools service directory.
    CreateDown {
        /// Inside path of the (resolved) service directory.
        dir: String,
    },
    /// Clear the execute bits of a Slackware rc script.
    ClearExec {
        /// Inside path of the script.
        path: String,
    },
    /// Set `key = value` in a `key = value` style configuration (postfix main.cf).
    SetMainCf {
        /// Inside path of main.cf.
        path: String,
        /// Parameter name.
        key: String,
        /// New value.
        value: String,
    },
    /// Set `key='value'` in a shell-style configuration (exim4 update-exim4.conf.conf).
    SetShellVar {
        /// Inside path of the file.
        path: String,
        /// Variable name.
        key: String,
        /// New value (single-quoted when written).
        value: String,
    },
    /// Make Postfix master.cf services that bind their own non-loopback host loopback-only.
    MasterCfLoopback {
        /// Inside path of master.cf.
        path: String,
        /// 0-based first lines of the entries to change.
        lines: Vec<usize>,
    },
    /// Append a line to a file (created when absent), e.g. `smtpd_flags=NO` to OpenBSD's
    /// rc.conf.local, where the last assignment wins.
    AppendLine {
        /// Inside path of the file.
        path: String,
        /// The line, without its newline.
        line: String,
    },
    /// Switch a launchd job off in launchd's disabled-jobs database (`launchctl disable`).
    LaunchdDisable {
        /// The job's label, e.g. `com.apple.postfix.master`.
        label: String,
        /// Its domain: `system`, or `gui/UID` for a user's agent.
        domain: String,
        /// Inside path of that domain's disabled-jobs database.
        db: String,
    },
    /// `svcadm disable FMRI`: switch an SMF service instance off (persistent).
    SmfDisable {
        /// The instance, e.g. `svc:/network/smtp:sendmail`.
        fmri: String,
    },
    /// Replace the interface of OpenSMTPD `listen on` lines with `localhost`.
    SmtpdListenLocal {
        /// Inside path of smtpd.conf.
        path: String,
        /// 0-based indices of the `listen on` lines to change.
        lines: Vec<usize>,
    },
}

/// Which harden mode a target belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetMode {
    /// Stops the MTA from starting (used in `disable` mode, and in `loopback-only` mode for
    /// MTAs without a loopback knob).
    Disable,
    /// Keeps the MTA but restricts its listener to loopback (`loopback-only` mode).
    Loopback,
}

/// One thing `harden` could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The MTA concerned.
    pub mta: Mta,
    /// The mechanism neutralised.
    pub mechanism: Mechanism,
    /// The mode this target serves.
    pub mode: TargetMode,
    /// The change.
    pub action: Action,
}

/// What the detectors found in a root.
#[derive(Debug, Default, Clone)]
pub struct Detection {
    /// Facts with proof.
    pub findings: Vec<MtaFact>,
    /// Possible harden changes.
    pub targets: Vec<Target>,
    /// Files that could not be interpreted.
    pub warnings: Vec<String>,
}

impl Detection {
    /// Records a fact.
    pub fn fact(
        &mut self,
        mta: Mta,
        fact: FactKind,
        mechanism: Option<Mechanism>,
        evidence: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.findings.push(MtaFact {
            mta,
            fact,
            mechanism,
            evidence: evidence.into(),
            detail: detail.into(),
        });
    }

    /// Records a disable-mode target.
    pub fn disable(&mut self, mta: Mta, mechanism: Mechanism, action: Action) {
        self.push_target(mta, mechanism, TargetMode::Disable, action);
    }

    /// Records a target, once.
    pub fn push_target(
        &mut self,
        mta: Mta,
        mechanism: Mechanism,
        mode: TargetMode,
        action: Action,
    ) {
        let t = Target {
            mta,
            mechanism,
            mode,
            action,
        };
        if !self.targets.contains(&t) {
            self.targets.push(t);
        }
    }

    /// Records a warning about a file that could not be interpreted.
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }

    /// Appends another detection.
    pub fn merge(&mut self, other: Detection) {
        self.findings.extend(other.findings);
        for t in other.targets {
            if !self.targets.contains(&t) {
                self.targets.push(t);
            }
        }
        self.warnings.extend(other.warnings);
    }
}

/// Runs every on-disk detector against `root`.
pub fn detect_all(root: &Root) -> Detection {
    let mut d = Detection::default();
    d.merge(installed::detect(root));
    d.merge(systemd::detect(root));
    d.merge(sysv::detect(root));
    d.merge(rcconf::detect(root));
    d.merge(openbsd::detect(root));
    d.merge(inetd::detect(root));
    d.merge(xinetd::detect(root));
    d.merge(runit::detect(root));
    d.merge(openrc::detect(root));
    d.merge(slackware::detect(root));
    d.merge(rclocal::detect(root));
    d.merge(launchd::detect(root));
    d.merge(smf::detect(root));
    d.merge(config::detect(root));
    d.findings
        .sort_by(|a, b| (a.mta, a.fact, &a.evidence).cmp(&(b.mta, b.fact, &b.evidence)));
    d.findings.dedup();
    d
}

#[cfg(test)]
mod junk_tests {
    //! Every parser must survive arbitrary input (binary junk, truncated lines, odd UTF-8)
    //! without panicking: errors are values, never crashes.

    use super::*;

    /// Deterministic pseudo-random text mixing syntax characters of all formats.
    fn junk(seed: u64, len: usize) -> String {
        const ALPHABET: &[&str] = &[
            "=",
            "\"",
            "'",
            "$",
            "(",
            ")",
            "`",
            "#",
            "\n",
            " ",
            "\t",
            "{",
            "}",
            "\\",
            ":",
            ";",
            "smtp",
            "service",
            "listen on",
            "S88",
            "K01",
            "sendmail_enable",
            "YES",
            "é",
            "\u{0}",
            "tcpserver",
            "-c",
            "0",
            "inet_interfaces",
            "if ",
            "fi",
            "[Socket]",
            "ListenStream=",
            "0A",
            "0100007F:0019",
            "-bd",
            "disable",
            "+=",
            "includedir",
        ];
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut s = String::new();
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(ALPHABET[(x % ALPHABET.len() as u64) as usize]);
        }
        s
    }

    #[test]
    fn parsers_never_panic() {
        for seed in 0..400 {
            let t = junk(seed, (seed % 60) as usize + 1);
            let _ = rcconf::parse("/etc/rc.conf", &t);
            let _ = rcconf::set_var("/etc/rc.conf", &t, "sendmail_enable", "NO");
            let _ = xinetd::parse("/etc/xinetd.d/x", &t);
            let _ = xinetd::disable_service("/etc/xinetd.d/x", &t, "smtp");
            let _ = inetd::scan(&t);
            let _ = inetd::comment_lines(&t, &[0, 1, 2]);
            let _ = unitfile::parse(&t);
            let _ = unitfile::listen_port(&t);
            let _ = rclocal::scan(&t);
            let _ = runit::tcpserver_listen(&t);
            let _ = config::main_cf_get(&t, "inet_interfaces");
            let _ = config::main_cf_set(&t, "inet_interfaces", "loopback-only");
            let _ = config::shell_set(&t, "dc_local_interfaces", "127.0.0.1");
            let _ = config::smtpd_listen_local(&t, &[0, 1]);
            let _ = master_cf::parse(&t);
            let _ = master_cf::make_loopback(&t, &[0, 1, 2]);
            let _ = crate::live::sockets::parse_table(&t);
            let _ = crate::live::proc::parse_ppid(&t);
        }
    }
}
