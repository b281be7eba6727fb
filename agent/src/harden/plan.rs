//! Building the harden plan from detector targets.
//!
//! Edits to the same file (several rc.conf variables, several inetd lines) are merged into a
//! single write, so each file is journaled and replaced once.

use std::os::unix::fs::PermissionsExt;

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::Mode;
use crate::detect::{
    Action, Detection, TargetMode, config, inetd, launchd, master_cf, openbsd, rcconf, xinetd,
};
use crate::error::{AgentError, Result};
use crate::root::{Root, join};

/// A concrete filesystem change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Replace (or create) a file's content, keeping its mode and owner.
    Write {
        /// Inside path.
        path: String,
        /// New content.
        bytes: Vec<u8>,
    },
    /// Create or replace a symlink.
    Symlink {
        /// Inside path of the link.
        path: String,
        /// Link target.
        target: String,
    },
    /// Remove a file or symlink.
    Remove {
        /// Inside path.
        path: String,
    },
    /// Rename within a directory.
    Rename {
        /// Old inside path.
        from: String,
        /// New inside path.
        to: String,
    },
    /// Change permission bits.
    Chmod {
        /// Inside path.
        path: String,
        /// New mode.
        mode: u32,
    },
    /// Create a directory.
    Mkdir {
        /// Inside path.
        path: String,
    },
    /// `svcadm disable FMRI` through the root's commands (SMF keeps no file to edit).
    SmfDisable {
        /// The service instance.
        fmri: String,
    },
}

impl Op {
    /// Every path whose prior state must be journaled before this op runs.
    pub fn touched(&self) -> Vec<String> {
        match self {
            Op::Write { path, .. }
            | Op::Symlink { path, .. }
            | Op::Remove { path }
            | Op::Chmod { path, .. }
            | Op::Mkdir { path } => vec![path.clone()],
            Op::Rename { from, to } => vec![from.clone(), to.clone()],
            Op::SmfDisable { .. } => vec![],
        }
    }

    /// The path a temporary sibling may be created for (atomic replacement), if any.
    pub fn temp_path(&self) -> Option<&str> {
        match self {
            Op::Write { path, .. } | Op::Symlink { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// One planned change with its purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The MTA concerned.
    pub mta: Mta,
    /// The mechanism neutralised.
    pub mechanism: Mechanism,
    /// The change.
    pub op: Op,
    /// Human-readable description.
    pub description: String,
}

/// A plan: steps to execute and notes about things deliberately left alone.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Explanations (skipped targets, follow-up commands).
    pub notes: Vec<String>,
}

/// Selects the targets for `mode`. In loopback-only mode an MTA with a loopback knob gets only
/// its loopback edits (or nothing when it is already loopback-only); any other MTA is disabled.
fn select(det: &Detection, mode: Mode) -> Vec<&crate::detect::Target> {
    // dma and nullmailer never listen: leave them, local mail (cron, alerts) needs them.
    let targets = det.targets.iter().filter(|t| t.mta.listens());
    match mode {
        Mode::Disable => targets.filter(|t| t.mode == TargetMode::Disable).collect(),
        Mode::LoopbackOnly => targets
            .filter(|t| {
                let has_knob = det
                    .targets
                    .iter()
                    .any(|o| o.mta == t.mta && o.mode == TargetMode::Loopback);
                let already_local = det
                    .findings
                    .iter()
                    .any(|f| f.mta == t.mta && f.fact == FactKind::LoopbackOnly)
                    && !det
                        .findings
                        .iter()
                        .any(|f| f.mta == t.mta && f.fact == FactKind::Exposed);
                if has_knob {
                    t.mode == TargetMode::Loopback
                } else {
                    t.mode == TargetMode::Disable && !already_local
                }
            })
            .collect(),
    }
}

/// Builds the plan for `det` in `mode`, reading current file contents from `root`.
pub fn build(root: &Root, det: &Detection, mode: Mode) -> Result<Plan> {
    let mut plan = Plan::default();
    // (path, mta, mechanism, descriptions, content)
    let mut edits: Vec<(String, Mta, Mechanism, Vec<String>, String)> = Vec::new();
    let mut edit = |root: &Root,
                    path: &str,
                    mta: Mta,
                    mech: Mechanism,
                    desc: String,
                    f: &dyn Fn(&str) -> Result<String>|
     -> Result<()> {
        // Edit the file a symlinked config points to (inside the root), never replace the link.
        let resolved = root.resolve(path);
        let path = resolved.as_str();
        let idx = match edits.iter().position(|e| e.0 == path) {
            Some(i) => i,
            None => {
                let cur = root.read_text(path)?.unwrap_or_default();
                edits.push((path.to_string(), mta, mech, Vec::new(), cur));
                edits.len() - 1
            }
        };
        let new = f(&edits[idx].4)?;
        edits[idx].3.push(desc);
        edits[idx].4 = new;
        Ok(())
    };
    // launchd's database is one binary-or-XML file for every job: one write for all labels.
    // (database, domain, MTA, label) in the order found.
    let mut launchd_off: Vec<(String, String, Mta, String)> = Vec::new();
    for t in select(det, mode) {
        match &t.action {
            Action::SmfDisable { fmri } => plan.steps.push(Step {
                mta: t.mta,
                mechanism: t.mechanism,
                op: Op::SmfDisable { fmri: fmri.clone() },
                description: format!("svcadm disable {fmri}"),
            }),
            Action::LaunchdDisable { label, domain, db } => {
                if !launchd_off.iter().any(|(d, _, _, l)| d == db && l == label) {
                    launchd_off.push((db.clone(), domain.clone(), t.mta, label.clone()));
                }
            }
            Action::RemoveLink { path } => plan.steps.push(Step {
                mta: t.mta,
                mechanism: t.mechanism,
                op: Op::Remove { path: path.clone() },
                description: format!("remove link {path}"),
            }),
            Action::Mask { unit } => {
                let path = join("/etc/systemd/system", unit);
                if let Ok(Some(m)) = root.lstat(&path)
                    && !m.file_type().is_symlink()
                {
                    plan.notes.push(format!(
                        "not masking {unit}: {path} is the admin's own unit file (systemctl mask refuses too); its wants links are removed instead"
                    ));
                    continue;
                }
                for dir in ["/etc/systemd", "/etc/systemd/system"] {
                    if !root.exists(dir)
                        && !plan
                            .steps
                            .iter()
                            .any(|s| s.op == (Op::Mkdir { path: dir.into() }))
                    {
                        plan.steps.push(Step {
                            mta: t.mta,
                            mechanism: t.mechanism,
                            op: Op::Mkdir { path: dir.into() },
                            description: format!("create directory {dir}"),
                        });
                    }
                }
                plan.steps.push(Step {
                    mta: t.mta,
                    mechanism: t.mechanism,
                    op: Op::Symlink {
                        path: path.clone(),
                        target: "/dev/null".into(),
                    },
                    description: format!("mask {unit} ({path} -> /dev/null)"),
                });
            }
            Action::RenameStart { from, to } => {
                if root.exists(to) {
                    plan.notes
                        .push(format!("not renaming {from}: {to} already exists"));
                    continue;
                }
                let short = to.rsplit('/').next().unwrap_or(to);
                plan.steps.push(Step {
                    mta: t.mta,
                    mechanism: t.mechanism,
                    op: Op::Rename {
                        from: from.clone(),
                        to: to.clone(),
                    },
                    description: format!("rename {from} -> {short}"),
                });
            }
            Action::RcConfSet { file, var, value } => {
                let path = file.clone().unwrap_or_else(|| "/etc/rc.conf".to_string());
                let desc = format!("set {var}=\"{value}\" in {path} (sysrc semantics)");
                let p2 = path.clone();
                edit(root, &path, t.mta, t.mechanism, desc, &|c| {
                    rcconf::set_var(&p2, c, var, value)
                })?;
            }
            Action::CommentLines { path, lines } => {
                let desc = format!(
                    "comment out {path} line(s) {} with marker {:?}",
                    lines
                        .iter()
                        .map(|l| (l + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    inetd::MARKER.trim_end()
                );
                edit(root, path, t.mta, t.mechanism, desc, &|c| {
                    Ok(inetd::comment_lines(c, lines))
                })?;
            }
            Action::XinetdDisable { path, service } => {
                let desc = format!("set disable = yes for service {service} in {path}");
                edit(root, path, t.mta, t.mechanism, desc, &|c| {
                    xinetd::disable_service(path, c, service)
                })?;
            }
            Action::CreateDown { dir } => {
                let path = join(dir, "down");
                plan.steps.push(Step {
                    mta: t.mta,
                    mechanism: t.mechanism,
                    op: Op::Write {
                        path: path.clone(),
                        bytes: Vec::new(),
                    },
                    description: format!("create {path} (service stays down at boot)"),
                });
            }
            Action::ClearExec { path } => {
                let meta = root
                    .lstat(path)?
                    .ok_or_else(|| AgentError::Refused(format!("{path} disappeared")))?;
                let mode = meta.permissions().mode() & 0o7777;
                plan.steps.push(Step {
                    mta: t.mta,
                    mechanism: t.mechanism,
                    op: Op::Chmod {
                        path: path.clone(),
                        mode: mode & !0o111,
                    },
                    description: format!("chmod {:04o} {path} (was {mode:04o})", mode & !0o111),
                });
            }
            Action::SetMainCf { path, key, value } => {
                let desc = format!("set {key} = {value} in {path} (then: postfix reload)");
                edit(root, path, t.mta, t.mechanism, desc, &|c| {
                    Ok(config::main_cf_set(c, key, value))
                })?;
            }
            Action::SetShellVar { path, key, value } => {
                let desc = format!(
                    "set {key}='{value}' in {path} (then: update-exim4.conf && systemctl restart exim4)"
                );
                edit(root, path, t.mta, t.mechanism, desc, &|c| {
                    Ok(config::shell_set(c, key, value))
                })?;
            }
            Action::MasterCfLoopback { path, lines } => {
                let desc = format!(
                    "bind master.cf service(s) at line(s) {} to loopback in {path} (then: postfix reload)",
                    lines
                        .iter()
                        .map(|l| (l + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                edit(root, path, t.mta, t.mechanism, desc, &|c| {
                    Ok(master_cf::make_loopback(c, lines))
                })?;
            }
            Action::AppendLine { path, line } => {
                let desc = format!("append {line} to {path} (as rcctl disable does)");
                edit(root, path, t.mta, t.mechanism, desc, &|c| {
                    Ok(openbsd::append_line(c, line))
                })?;
            }
            Action::SmtpdListenLocal { path, lines } => {
                let desc = format!("listen on localhost instead of external interfaces in {path}");
                edit(root, path, t.mta, t.mechanism, desc, &|c| {
                    Ok(config::smtpd_listen_local(c, lines))
                })?;
            }
        }
    }
    // One step per job and database, each writing the database with every job so far
    // switched off, so that each step names its own MTA.
    let mut dbs: Vec<&str> = Vec::new();
    for (db, ..) in &launchd_off {
        if !dbs.contains(&db.as_str()) {
            dbs.push(db);
        }
    }
    for db in dbs {
        let path = root.resolve(db);
        let mut current = root.read_bytes(&path)?;
        for (_, domain, mta, label) in launchd_off.iter().filter(|(d, ..)| d == db) {
            let bytes = launchd::disable_in_db(current.as_deref(), std::slice::from_ref(label))
                .map_err(|e| AgentError::Refused(format!("{db}: {e}")))?;
            current = Some(bytes.clone());
            plan.steps.push(Step {
                mta: *mta,
                mechanism: Mechanism::Launchd,
                op: Op::Write {
                    path: path.clone(),
                    bytes,
                },
                description: format!(
                    "launchctl disable {domain}/{label} ({label} => true in {db})"
                ),
            });
        }
    }
    // What a running system needs after the on-disk change (harden does not stop daemons).
    let mut follow: Vec<&str> = Vec::new();
    for s in &plan.steps {
        let hint = match s.mechanism {
            Mechanism::Systemd | Mechanism::SystemdSocket | Mechanism::SystemdSysvGenerated => {
                "systemd: run `systemctl daemon-reload` and stop the units, or reboot"
            }
            Mechanism::Launchd => {
                "launchd: `launchctl bootout system/LABEL` (an agent: `gui/UID/LABEL`) stops a job that runs now"
            }
            Mechanism::Smf => "SMF: `svcadm disable` also stops an instance that is online",
            _ => continue,
        };
        if !follow.contains(&hint) {
            follow.push(hint);
        }
    }
    for (path, _, mech, _, _) in &edits {
        let hint = match mech {
            Mechanism::RcConf if path == openbsd::RC_CONF_LOCAL && openbsd::is_openbsd(root) => {
                "OpenBSD: `rcctl stop smtpd` stops what is running"
            }
            Mechanism::Inetd => "inetd: send SIGHUP to inetd to reread inetd.conf",
            Mechanism::Xinetd => "xinetd: reload xinetd (SIGHUP) to apply disable = yes",
            Mechanism::RcConf => {
                "FreeBSD: `service sendmail onestop` (or postfix/exim/smtpd) stops what is running"
            }
            _ => continue,
        };
        if !follow.contains(&hint) {
            follow.push(hint);
        }
    }
    plan.notes.extend(follow.into_iter().map(str::to_string));
    for (path, mta, mechanism, descs, content) in edits {
        let cur = root.read_text(&path)?.unwrap_or_default();
        if cur == content {
            continue;
        }
        plan.steps.push(Step {
            mta,
            mechanism,
            op: Op::Write {
                path,
                bytes: content.into_bytes(),
            },
            description: descs.join("; "),
        });
    }
    Ok(plan)
}
