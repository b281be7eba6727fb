//! `revert`: put every journaled path back exactly as it was.
//!
//! Entries are undone newest first, and within an entry paths in reverse order, so a path
//! touched by several steps ends in the state recorded before the first of them. Restoring is
//! idempotent (a path already in its recorded state is left as is), which makes a crash in the
//! middle of `harden` — or of `revert` itself — safe: run `revert` again.

use std::fs;

use crate::detect::smf;
use crate::error::{AgentError, Result};
use crate::fsutil::{remove_temp, restore, sync_dir};
use crate::harden::apply::commands;
use crate::harden::journal::{JOURNAL_DIR, JOURNAL_PATH, load};
use crate::root::Root;

/// What a revert did.
#[derive(Debug, Clone, Default)]
pub struct RevertSummary {
    /// Descriptions of the undone steps, newest first.
    pub undone: Vec<String>,
    /// Whether a torn (incomplete) last journal line was ignored.
    pub torn_tail: bool,
    /// False when there was no journal.
    pub had_journal: bool,
    /// The state directories the journal's header says an earlier run created; whoever holds
    /// the lock removes them once its lock file is gone (see [`crate::lock::Lock::release`]).
    pub state_dirs: Vec<String>,
}

/// Reverts every journaled change under `root`, then removes the journal (and the
/// directories created for it), leaving the tree as before the first harden.
pub fn revert(root: &Root) -> Result<RevertSummary> {
    let mut s = RevertSummary::default();
    let Some((header, entries, torn)) = load(root)? else {
        return Ok(s);
    };
    s.had_journal = true;
    s.state_dirs = header.created_dirs.clone();
    s.torn_tail = torn;
    for e in entries.iter().rev() {
        if let Some(t) = &e.temp {
            remove_temp(root, t)?;
        }
        if let Some((from, to)) = &e.renamed
            && !root.exists(from)
            && root.exists(to)
        {
            let (f, t) = (root.host(from), root.host(to));
            fs::rename(&t, &f).map_err(|er| AgentError::io(&t, er))?;
            sync_dir(f.parent().unwrap_or(root.base()))?;
        }
        for (path, state) in e.before.iter().rev() {
            restore(root, path, state, 0)?;
        }
        // Enabling an enabled instance changes nothing, so this is safe to repeat, and right
        // when a crash came between the journal line and `svcadm disable`.
        if let Some(s) = &e.service
            && s.enabled
        {
            smf::set_enabled(commands(root)?, &s.fmri, true)?;
        }
        s.undone.push(e.description.clone());
    }
    let j = root.host(JOURNAL_PATH);
    fs::remove_file(&j).map_err(|e| AgentError::io(&j, e))?;
    sync_dir(&root.host(JOURNAL_DIR))?;
    for d in header.created_dirs.iter().rev() {
        let h = root.host(d);
        // Only remove what is empty: someone may have put files there since.
        if fs::remove_dir(&h).is_ok()
            && let Some(p) = h.parent()
        {
            sync_dir(p)?;
        }
    }
    Ok(s)
}
