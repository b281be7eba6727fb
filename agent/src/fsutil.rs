//! Path snapshots and atomic filesystem changes.
//!
//! A [`PathState`] is everything `revert` needs to put a path back byte for byte: content,
//! mode and owner of a file, the target of a symlink, or the fact that nothing was there.
//! Writes go to a temporary sibling, are fsynced, then renamed over the destination, and the
//! directory is fsynced, so a crash leaves either the old or the new file — never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, lchown, symlink};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::root::{MAX_FILE_BYTES, Root};

/// The state of one path, as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PathState {
    /// Nothing at the path.
    Absent,
    /// A regular file.
    File {
        /// Permission bits including setuid/setgid/sticky.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Content, hex-encoded (JSON has no byte strings; hex keeps the journal greppable).
        content_hex: String,
    },
    /// A symbolic link.
    Symlink {
        /// Link target, verbatim.
        target: String,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A directory (only its existence, mode and owner are restored).
    Dir {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// Hex-encodes bytes.
pub fn to_hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Decodes hex; `None` when malformed (a corrupt journal).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Records the current state of `inside`.
pub fn snapshot(root: &Root, inside: &str) -> Result<PathState> {
    let host = root.host(inside);
    let Some(meta) = root.lstat(inside)? else {
        return Ok(PathState::Absent);
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(&host).map_err(|e| AgentError::io(&host, e))?;
        Ok(PathState::Symlink {
            target: target.to_string_lossy().into_owned(),
            uid: meta.uid(),
            gid: meta.gid(),
        })
    } else if ft.is_dir() {
        Ok(PathState::Dir {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    } else if ft.is_file() {
        if meta.len() > MAX_FILE_BYTES {
            return Err(AgentError::Refused(format!(
                "{inside}: too large to journal ({} bytes)",
                meta.len()
            )));
        }
        let bytes = fs::read(&host).map_err(|e| AgentError::io(&host, e))?;
        Ok(PathState::File {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            content_hex: to_hex(&bytes),
        })
    } else {
        Err(AgentError::Refused(format!(
            "{inside}: not a regular file, symlink or directory; refusing to touch it"
        )))
    }
}

/// Name of the temporary sibling used to replace `inside` atomically.
pub fn temp_for(inside: &str) -> String {
    let (dir, name) = inside.rsplit_once('/').unwrap_or(("", inside));
    format!("{dir}/.{name}.relayguard-tmp")
}

/// fsyncs a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| AgentError::io(dir, e))?;
    f.sync_all().map_err(|e| AgentError::io(dir, e))
}

fn parent_of(root: &Root, inside: &str) -> std::path::PathBuf {
    root.host(inside)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.base().to_path_buf())
}

/// Hook for crash-injection tests: aborts the process when the named environment variable
/// equals `n`. Compiled only into debug builds, so release binaries cannot be made to crash.
pub fn crash_point(var: &str, n: usize) {
    #[cfg(debug_assertions)]
    if std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(n)
    {
        eprintln!("relayguard-agent: crash injected ({var}={n})");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = (var, n);
}

/// Hook for tests of concurrent runs: when the named environment variable names a directory,
/// creates `locked` in it and waits (up to two minutes) until `release` appears there.
/// Compiled only into debug builds, like [`crash_point`].
pub fn pause_point(var: &str) {
    #[cfg(debug_assertions)]
    if let Ok(dir) = std::env::var(var) {
        let dir = Path::new(&dir);
        let _ = File::create(dir.join("locked"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !dir.join("release").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = var;
}

/// Puts `inside` into `state` atomically. `step` feeds the crash-injection hook.
pub fn restore(root: &Root, inside: &str, state: &PathState, step: usize) -> Result<()> {
    let host = root.host(inside);
    let parent = parent_of(root, inside);
    match state {
        PathState::Absent => {
            let Some(meta) = root.lstat(inside)? else {
                return Ok(());
            };
            if meta.is_dir() {
                fs::remove_dir(&host).map_err(|e| AgentError::io(&host, e))?;
            } else {
                fs::remove_file(&host).map_err(|e| AgentError::io(&host, e))?;
            }
            sync_dir(&parent)
        }
        PathState::File {
            mode,
            uid,
            gid,
            content_hex,
        } => {
            let bytes = from_hex(content_hex).ok_or_else(|| {
                AgentError::Refused(format!("{inside}: corrupt content in journal"))
            })?;
            if let Some(meta) = root.lstat(inside)?
                && meta.is_dir()
            {
                return Err(AgentError::Refused(format!(
                    "{inside}: is a directory, expected a file"
                )));
            }
            // Already in the wanted state: leave the inode alone (keeps hard links intact).
            if snapshot(root, inside)? == *state {
                return Ok(());
            }
            let tmp = root.host(&temp_for(inside));
            let _ = fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| AgentError::io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| AgentError::io(&tmp, e))?;
            std::os::unix::fs::fchown(&f, Some(*uid), Some(*gid))
                .map_err(|e| AgentError::io(&tmp, e))?;
            f.set_permissions(fs::Permissions::from_mode(*mode))
                .map_err(|e| AgentError::io(&tmp, e))?;
            f.sync_all().map_err(|e| AgentError::io(&tmp, e))?;
            drop(f);
            crash_point("RELAYGUARD_AGENT_CRASH_BEFORE_RENAME", step);
            fs::rename(&tmp, &host).map_err(|e| AgentError::io(&host, e))?;
            sync_dir(&parent)
        }
        PathState::Symlink { target, uid, gid } => {
            if root.read_link(inside).as_deref() == Some(target.as_str()) {
                lchown(&host, Some(*uid), Some(*gid)).map_err(|e| AgentError::io(&host, e))?;
                return Ok(());
            }
            if let Some(meta) = root.lstat(inside)?
                && meta.is_dir()
            {
                return Err(AgentError::Refused(format!(
                    "{inside}: is a directory, expected a symlink"
                )));
            }
            let tmp = root.host(&temp_for(inside));
            let _ = fs::remove_file(&tmp);
            symlink(target, &tmp).map_err(|e| AgentError::io(&tmp, e))?;
            lchown(&tmp, Some(*uid), Some(*gid)).map_err(|e| AgentError::io(&tmp, e))?;
            crash_point("RELAYGUARD_AGENT_CRASH_BEFORE_RENAME", step);
            fs::rename(&tmp, &host).map_err(|e| AgentError::io(&host, e))?;
            sync_dir(&parent)
        }
        PathState::Dir { mode, uid, gid } => {
            match fs::create_dir(&host) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(AgentError::io(&host, e)),
            }
            fs::set_permissions(&host, fs::Permissions::from_mode(*mode))
                .map_err(|e| AgentError::io(&host, e))?;
            lchown(&host, Some(*uid), Some(*gid)).map_err(|e| AgentError::io(&host, e))?;
            sync_dir(&parent)
        }
    }
}

/// Removes a leftover temporary file (inside path `temp`) of an interrupted atomic write.
pub fn remove_temp(root: &Root, temp: &str) -> Result<()> {
    let tmp = root.host(temp);
    match fs::remove_file(&tmp) {
        Ok(()) => sync_dir(&parent_of(root, temp)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::io(tmp, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xfe, b'a'];
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }
}
