//! The harden journal: an append-only JSON Lines file under the root
//! (`/var/lib/relayguard-agent/journal.jsonl`).
//!
//! Line 1 is a header naming the directories the agent had to create for the journal (so
//! `revert` can remove them and leave the tree exactly as it found it). Every following line is
//! one step: the prior state of each path it touches, written and fsynced BEFORE the change.
//! A torn last line (crash during the append) is ignored: its change was never started.
//!
//! A run that completes its steps ends with a [`RoundEnd`] line: the sequence number of its
//! last step, its mode and the MTAs it found back after an earlier run had switched them off.
//! Without that line a later run cannot tell a reappearance from the rest of an interrupted run.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use relayguard_core::agent_report::{Mechanism, Mta, PackageVersion, Reappearance};
use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::fsutil::{PathState, sync_dir};
use crate::root::Root;

/// Inside directory of the journal.
pub const JOURNAL_DIR: &str = "/var/lib/relayguard-agent";
/// Inside path of the journal.
pub const JOURNAL_PATH: &str = "/var/lib/relayguard-agent/journal.jsonl";
/// Journal format version written by this agent. Version 2 added [`RoundEnd`] lines and the
/// package of each step; version 1 journals are still read.
pub const JOURNAL_VERSION: u32 = 2;

/// First line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always `relayguard-agent`, to recognise the file.
    pub journal: String,
    /// [`JOURNAL_VERSION`].
    pub version: u32,
    /// Directories created to hold the journal, outermost first.
    pub created_dirs: Vec<String>,
}

/// One journaled step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Sequence number, 1-based over the journal's life.
    pub seq: u64,
    /// MTA concerned.
    pub mta: Mta,
    /// Mechanism neutralised.
    pub mechanism: Mechanism,
    /// What the step does.
    pub description: String,
    /// Prior state of every touched path, in order.
    pub before: Vec<(String, PathState)>,
    /// Temporary sibling the step may create (removed by revert if a crash left it behind).
    #[serde(default)]
    pub temp: Option<String>,
    /// For renames: (from, to). Revert renames back, which keeps the inode (and so Solaris
    /// hard links between rc2.d and init.d) instead of writing a copy.
    #[serde(default)]
    pub renamed: Option<(String, String)>,
    /// The package that provided the MTA when the step was made (dpkg status), if known.
    #[serde(default)]
    pub package: Option<PackageVersion>,
    /// For a step on an SMF service instance: whether it was enabled before.
    #[serde(default)]
    pub service: Option<ServiceState>,
}

/// An SMF service instance's enablement before a step changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The instance, e.g. `svc:/network/smtp:sendmail`.
    pub fmri: String,
    /// `general/enabled` before the step.
    pub enabled: bool,
}

/// The line a completed `harden` run appends after its last step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundEnd {
    /// Sequence number of the run's last step: every step up to it was applied.
    pub complete: u64,
    /// The run's mode (`disable` or `loopback-only`).
    pub mode: String,
    /// Seconds since the Unix epoch at the end of the run.
    pub at: u64,
    /// MTAs the run found back after an earlier run had switched them off.
    #[serde(default)]
    pub reappeared: Vec<Reappearance>,
}

/// Everything a journal holds.
#[derive(Debug, Clone)]
pub struct Contents {
    /// Line 1.
    pub header: Header,
    /// Complete step lines, in order.
    pub entries: Vec<Entry>,
    /// Round-end lines, in order.
    pub rounds: Vec<RoundEnd>,
    /// Whether a torn last line was dropped.
    pub torn: bool,
}

impl Contents {
    /// Whether the last run that made changes also finished them: its round-end line follows
    /// its last step. False after a crash (or for a version 1 journal).
    pub fn last_run_finished(&self) -> bool {
        match (self.entries.last(), self.rounds.last()) {
            (Some(e), Some(r)) => r.complete == e.seq,
            (None, _) => true,
            (Some(_), None) => false,
        }
    }
}

/// A journal opened for appending.
pub struct Journal {
    file: File,
    next_seq: u64,
}

impl Journal {
    /// Opens (creating if needed) the journal under `root`. `created_dirs` are the state
    /// directories this run already created (for the lock); they are recorded in a new journal's
    /// header so that `revert` removes them too.
    pub fn open(root: &Root, created_dirs: &[String]) -> Result<Journal> {
        let path = root.host(JOURNAL_PATH);
        let next_seq = match load_contents(root)? {
            Some(c) => c.entries.last().map(|e| e.seq + 1).unwrap_or(1),
            None => {
                let mut created = created_dirs.to_vec();
                created.extend(create_state_dir(root)?);
                let header = Header {
                    journal: "relayguard-agent".into(),
                    version: JOURNAL_VERSION,
                    created_dirs: created,
                };
                let mut f = OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| AgentError::io(&path, e))?;
                writeln!(f, "{}", serde_json::to_string(&header)?)
                    .map_err(|e| AgentError::io(&path, e))?;
                f.sync_all().map_err(|e| AgentError::io(&path, e))?;
                sync_dir(&root.host(JOURNAL_DIR))?;
                1
            }
        };
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| AgentError::io(&path, e))?;
        Ok(Journal { file, next_seq })
    }

    /// Appends an entry and makes it durable before returning.
    pub fn append(&mut self, mut e: Entry) -> Result<u64> {
        e.seq = self.next_seq;
        let line = serde_json::to_string(&e)? + "\n";
        let p = std::path::PathBuf::from(JOURNAL_PATH);
        self.file
            .write_all(line.as_bytes())
            .map_err(|er| AgentError::io(&p, er))?;
        self.file.sync_data().map_err(|er| AgentError::io(&p, er))?;
        self.next_seq += 1;
        Ok(e.seq)
    }

    /// Appends the round-end line for the steps appended so far, durably.
    pub fn end_round(&mut self, mode: &str, at: u64, reappeared: Vec<Reappearance>) -> Result<()> {
        let r = RoundEnd {
            complete: self.next_seq - 1,
            mode: mode.to_string(),
            at,
            reappeared,
        };
        let line = serde_json::to_string(&r)? + "\n";
        let p = std::path::PathBuf::from(JOURNAL_PATH);
        self.file
            .write_all(line.as_bytes())
            .map_err(|er| AgentError::io(&p, er))?;
        self.file.sync_data().map_err(|er| AgentError::io(&p, er))
    }
}

/// Creates the missing components of [`JOURNAL_DIR`] and returns them, outermost first.
pub fn create_state_dir(root: &Root) -> Result<Vec<String>> {
    let mut created = Vec::new();
    let mut acc = String::new();
    for comp in JOURNAL_DIR.trim_start_matches('/').split('/') {
        acc.push('/');
        acc.push_str(comp);
        if !root.exists(&acc) {
            let host = root.host(&acc);
            // The journal holds original file contents: only root may read it.
            let mode = if acc == JOURNAL_DIR { 0o700 } else { 0o755 };
            match fs::DirBuilder::new().mode(mode).create(&host) {
                Ok(()) => created.push(acc.clone()),
                // Another run made it in the meantime: not ours to remove.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(AgentError::io(&host, e)),
            }
        }
    }
    Ok(created)
}

/// Loads the journal: header, complete entries, and whether a torn last line was dropped.
/// `Ok(None)` when there is no journal.
pub fn load(root: &Root) -> Result<Option<(Header, Vec<Entry>, bool)>> {
    Ok(load_contents(root)?.map(|c| (c.header, c.entries, c.torn)))
}

/// Loads the whole journal, round-end lines included. `Ok(None)` when there is no journal.
pub fn load_contents(root: &Root) -> Result<Option<Contents>> {
    let path = root.host(JOURNAL_PATH);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AgentError::io(&path, e)),
    };
    let text = String::from_utf8(bytes).map_err(|_| AgentError::Journal {
        path: path.clone(),
        message: "not UTF-8".into(),
    })?;
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut torn = false;
    // Only a line with its newline was fully appended (the newline is written last).
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
        torn = true;
    }
    let Some(first) = lines.first() else {
        return Err(AgentError::Journal {
            path,
            message: "empty (no header)".into(),
        });
    };
    let header: Header = serde_json::from_str(first).map_err(|e| AgentError::Journal {
        path: path.clone(),
        message: format!("line 1: bad header: {e}"),
    })?;
    if header.journal != "relayguard-agent" || !(1..=JOURNAL_VERSION).contains(&header.version) {
        return Err(AgentError::Journal {
            path,
            message: format!("unsupported journal (version {})", header.version),
        });
    }
    let mut entries = Vec::new();
    let mut rounds = Vec::new();
    for (i, l) in lines.iter().enumerate().skip(1) {
        let bad = |e: serde_json::Error| AgentError::Journal {
            path: path.clone(),
            message: format!("line {}: {e}", i + 1),
        };
        let v: serde_json::Value = serde_json::from_str(l).map_err(bad)?;
        if v.get("complete").is_some() {
            rounds.push(serde_json::from_value(v).map_err(bad)?);
        } else {
            entries.push(serde_json::from_value(v).map_err(bad)?);
        }
    }
    Ok(Some(Contents {
        header,
        entries,
        rounds,
        torn,
    }))
}
