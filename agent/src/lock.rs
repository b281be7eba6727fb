//! One `harden` or `revert` at a time per root.
//!
//! Two runs that interleave (a timer firing while an admin runs `revert`) could journal a
//! state the other is about to change, and `revert` would then restore the wrong bytes. Each
//! run therefore takes an exclusive, non-blocking `flock` (std's [`File::try_lock`]) on
//! `/var/lib/relayguard-agent/lock` inside the root before it reads anything it will change,
//! and holds it to the end. A second run does not wait: it reports "busy" (exit code 5). The
//! kernel drops the lock when its process dies, so a killed run never leaves a deadlock.
//!
//! The lock file lives beside the journal. When a run ends and no journal remains (nothing
//! was changed, or `revert` has just undone everything) the lock file is removed, and so are
//! the state directories made for it, so the tree is left exactly as it was found. Removing a
//! lock file races with a run that opened it just before: every run therefore checks, once it
//! holds the lock, that the path still names the file it locked, and starts over if not.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::error::{AgentError, Result};
use crate::fsutil::sync_dir;
use crate::harden::journal::{JOURNAL_DIR, JOURNAL_PATH, create_state_dir};
use crate::root::Root;

/// Inside path of the lock file.
pub const LOCK_PATH: &str = "/var/lib/relayguard-agent/lock";

/// Whether `d` is [`JOURNAL_DIR`] or one of its parents: the only directories a lock file may
/// ask to remove.
fn is_state_dir_prefix(d: &str) -> bool {
    d.starts_with('/')
        && d.len() > 1
        && JOURNAL_DIR.starts_with(d)
        && (JOURNAL_DIR.len() == d.len() || JOURNAL_DIR.as_bytes()[d.len()] == b'/')
}

/// An exclusive hold on a root's state directory, released on [`Lock::release`] or when the
/// process ends.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
    created: Vec<String>,
}

impl Lock {
    /// Takes the lock of `root` without waiting; [`AgentError::Busy`] when another run holds it.
    pub fn acquire(root: &Root) -> Result<Lock> {
        let path = root.host(LOCK_PATH);
        let mut created = Vec::new();
        // A handful of rounds: each retry means a run finished and removed the file between our
        // open and our lock, which cannot go on for long.
        for _ in 0..10 {
            created.extend(create_state_dir(root)?);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| AgentError::io(&path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(AgentError::Busy(format!(
                        "another relayguard-agent harden or revert holds {}",
                        path.display()
                    )));
                }
                Err(TryLockError::Error(e)) => return Err(AgentError::io(&path, e)),
            }
            let held = file.metadata().map_err(|e| AgentError::io(&path, e))?;
            let same = fs::metadata(&path)
                .is_ok_and(|now| now.ino() == held.ino() && now.dev() == held.dev());
            if same {
                let mut lock = Lock {
                    file,
                    path,
                    created,
                };
                lock.remember_dirs()?;
                sync_dir(&root.host(JOURNAL_DIR))?;
                crate::fsutil::pause_point("RELAYGUARD_AGENT_PAUSE_WITH_LOCK");
                return Ok(lock);
            }
        }
        Err(AgentError::Busy(format!(
            "{} keeps being replaced by other runs",
            path.display()
        )))
    }

    /// Merges the directories an earlier run wrote into the lock file (it was killed before it
    /// could remove them) with the ones this run created, and writes the list back, so the run
    /// that finally removes the lock file also removes every directory made for it.
    fn remember_dirs(&mut self) -> Result<()> {
        let mut text = String::new();
        let _ = (&self.file).read_to_string(&mut text);
        let mut dirs: Vec<String> = text
            .lines()
            .filter(|l| is_state_dir_prefix(l))
            .map(str::to_string)
            .collect();
        for d in &self.created {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        dirs.sort_by_key(std::string::String::len);
        let io = |e| AgentError::io(&self.path, e);
        self.file.set_len(0).map_err(io)?;
        (&self.file).seek(SeekFrom::Start(0)).map_err(io)?;
        (&self.file)
            .write_all(
                dirs.iter()
                    .map(|d| format!("{d}\n"))
                    .collect::<String>()
                    .as_bytes(),
            )
            .map_err(io)?;
        self.file.sync_all().map_err(io)?;
        self.created = dirs;
        Ok(())
    }

    /// State directories made to hold the lock (by this run, or by a killed earlier run that
    /// left its lock file), outermost first.
    pub fn created_dirs(&self) -> &[String] {
        &self.created
    }

    /// Ends the run. Without a journal left under `root`, removes the lock file and then the
    /// directories in `also_remove` and those this run created, when empty (a journal's header
    /// names the ones an earlier run created, which `revert` passes here).
    pub fn release(self, root: &Root, also_remove: &[String]) -> Result<()> {
        if root.exists(JOURNAL_PATH) {
            return Ok(());
        }
        // Unlink while still holding the lock: a run that opened the old file finds it replaced.
        match fs::remove_file(&self.path) {
            Ok(()) => sync_dir(&root.host(JOURNAL_DIR))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AgentError::io(&self.path, e)),
        }
        let mut dirs: Vec<&String> = self.created.iter().chain(also_remove).collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        dirs.dedup();
        for d in dirs {
            let h = root.host(d);
            // Only what is empty: someone may have put files there since.
            if fs::remove_dir(&h).is_ok()
                && let Some(p) = h.parent()
            {
                sync_dir(p)?;
            }
        }
        drop(self.file);
        Ok(())
    }
}
