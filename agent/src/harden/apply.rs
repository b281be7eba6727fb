//! Executing a plan: for each step, snapshot the touched paths, journal them (fsynced), then
//! make the change atomically. A crash at any point leaves a journal that describes every
//! change that may have happened, which is all `revert` needs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use relayguard_core::agent_report::{ActionRecord, Mta, PackageVersion, Reappearance};

use super::Mode;
use super::journal::{Entry, Journal, ServiceState, load_contents};
use super::plan::{Op, Plan};
use crate::detect::smf;
use crate::dpkg;
use crate::error::{AgentError, Result};
use crate::fsutil::{PathState, crash_point, restore, snapshot, sync_dir, temp_for, to_hex};
use crate::root::Root;

/// Owner of the directory that will hold `inside`, used for files the agent creates.
fn parent_owner(root: &Root, inside: &str) -> (u32, u32) {
    let parent = root.host(inside);
    parent
        .parent()
        .and_then(|p| fs::metadata(p).ok())
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((0, 0))
}

/// The root's system commands, which SMF steps need.
pub fn commands(root: &Root) -> Result<&dyn crate::command::CommandRunner> {
    root.commands().ok_or_else(|| {
        AgentError::Refused(format!(
            "{}: SMF services can only be changed on the running system",
            root.base().display()
        ))
    })
}

/// What a run's round-end line records besides its steps.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// The run's mode.
    pub mode: Mode,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// MTAs found back (see [`super::reappear::find`]).
    pub reappeared: &'a [Reappearance],
}

/// Applies `plan`, journaling first, and ends the journal's round once every step is made.
/// Returns the actions taken. `created_dirs` are the state directories the caller created for
/// its lock (see [`crate::lock::Lock::created_dirs`]).
pub fn apply(
    root: &Root,
    plan: &Plan,
    created_dirs: &[String],
    round: Round<'_>,
) -> Result<Vec<ActionRecord>> {
    let mut done = Vec::new();
    if plan.steps.is_empty() {
        // A run that crashed after its last change left no round-end line: this run finds
        // nothing left to do and finishes it, so that later runs can see reappearances.
        if load_contents(root)?.is_some_and(|c| !c.last_run_finished()) {
            Journal::open(root, created_dirs)?.end_round(round.mode.as_str(), round.at, vec![])?;
        }
        return Ok(done);
    }
    let mut journal = Journal::open(root, created_dirs)?;
    let mut packages: Vec<(Mta, Option<PackageVersion>)> = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let n = i + 1;
        let mut before = Vec::new();
        for p in step.op.touched() {
            before.push((p.clone(), snapshot(root, &p)?));
        }
        let service = match &step.op {
            Op::SmfDisable { fmri } => Some(ServiceState {
                fmri: fmri.clone(),
                enabled: smf::enabled(commands(root)?, fmri)?,
            }),
            _ => None,
        };
        journal.append(Entry {
            seq: 0,
            mta: step.mta,
            mechanism: step.mechanism,
            description: step.description.clone(),
            before: before.clone(),
            temp: step.op.temp_path().map(temp_for),
            renamed: match &step.op {
                Op::Rename { from, to } => Some((from.clone(), to.clone())),
                _ => None,
            },
            service,
            package: match packages.iter().find(|p| p.0 == step.mta) {
                Some(p) => p.1.clone(),
                None => {
                    let p = dpkg::package_of(root, step.mta);
                    packages.push((step.mta, p.clone()));
                    p
                }
            },
        })?;
        crash_point("RELAYGUARD_AGENT_CRASH_AFTER_JOURNAL", n);
        execute(root, &step.op, &before, n)?;
        crash_point("RELAYGUARD_AGENT_CRASH_AFTER_CHANGE", n);
        let path = match &step.op {
            Op::SmfDisable { fmri } => fmri.clone(),
            op => op.touched().into_iter().next().unwrap_or_default(),
        };
        done.push(ActionRecord {
            mta: step.mta,
            mechanism: step.mechanism,
            path,
            description: step.description.clone(),
        });
    }
    journal.end_round(round.mode.as_str(), round.at, round.reappeared.to_vec())?;
    Ok(done)
}

fn execute(root: &Root, op: &Op, before: &[(String, PathState)], n: usize) -> Result<()> {
    match op {
        Op::Write { path, bytes } => {
            // Keep the file's mode and owner; a new file gets 0644 and its directory's owner.
            let (mode, uid, gid) = match before.first().map(|b| &b.1) {
                Some(PathState::File { mode, uid, gid, .. }) => (*mode, *uid, *gid),
                Some(PathState::Absent) | None => {
                    let (u, g) = parent_owner(root, path);
                    (0o644, u, g)
                }
                Some(_) => {
                    return Err(AgentError::Refused(format!("{path}: not a regular file")));
                }
            };
            restore(
                root,
                path,
                &PathState::File {
                    mode,
                    uid,
                    gid,
                    content_hex: to_hex(bytes),
                },
                n,
            )
        }
        Op::Symlink { path, target } => {
            let (uid, gid) = parent_owner(root, path);
            restore(
                root,
                path,
                &PathState::Symlink {
                    target: target.clone(),
                    uid,
                    gid,
                },
                n,
            )
        }
        Op::Remove { path } => restore(root, path, &PathState::Absent, n),
        Op::Mkdir { path } => {
            let (uid, gid) = parent_owner(root, path);
            restore(
                root,
                path,
                &PathState::Dir {
                    mode: 0o755,
                    uid,
                    gid,
                },
                n,
            )
        }
        Op::Rename { from, to } => {
            if root.exists(to) {
                return Err(AgentError::Refused(format!("{to} already exists")));
            }
            let (f, t) = (root.host(from), root.host(to));
            fs::rename(&f, &t).map_err(|e| AgentError::io(&f, e))?;
            sync_dir(t.parent().unwrap_or(root.base()))
        }
        Op::SmfDisable { fmri } => smf::set_enabled(commands(root)?, fmri, false),
        Op::Chmod { path, mode } => {
            let h = root.host(path);
            fs::set_permissions(&h, fs::Permissions::from_mode(*mode))
                .map_err(|e| AgentError::io(&h, e))
        }
    }
}
