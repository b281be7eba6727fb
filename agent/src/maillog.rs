//! Bounces a mail server generated since the last report, counted in its mail log.
//!
//! The log is read from the offset the previous report saved (`mail-log.offset` in the state
//! directory: the file's inode and the byte offset), so each line is counted once however
//! large the log grows. A different inode or a shorter file means the log was rotated: it is
//! read from its start. The first run has no baseline: it saves the offset and reports nothing.
//!
//! A bounce is Postfix's `postfix/bounce[PID]: ID: sender non-delivery notification: NEWID`
//! (delay warnings say "sender delay notification" and are not counted) or an Exim message
//! received with the null sender (`<= <>`).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::fsutil::{PathState, to_hex};
use crate::root::Root;

/// The state file's name in the state directory.
pub const OFFSET_FILE: &str = "mail-log.offset";

/// Where the previous report stopped reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Offset {
    inode: u64,
    offset: u64,
}

/// Whether a log line records a bounce the server generated.
pub fn is_bounce(line: &str) -> bool {
    (line.contains("postfix/bounce[") || line.contains("/bounce["))
        && line.contains(": sender non-delivery notification: ")
        || line.contains(" <= <> ")
}

/// Counts the bounces in `log` since the offset saved in `state_dir`, and saves the new one.
/// `Ok(None)` on the first run (no baseline yet) or when there is no log.
pub fn bounces_since_last(log: &Path, state_dir: &Path) -> Result<Option<u64>> {
    let mut f = match File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AgentError::io(log, e)),
    };
    let meta = f.metadata().map_err(|e| AgentError::io(log, e))?;
    let state = state_dir.join(OFFSET_FILE);
    let prev: Option<Offset> = fs::read(&state)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let start = match prev {
        Some(p) if p.inode == meta.ino() && p.offset <= meta.len() => Some(p.offset),
        // Rotated (a new file, or truncated): everything in it is new.
        Some(_) => Some(0),
        None => None,
    };
    let (count, end) = match start {
        Some(start) => {
            f.seek(SeekFrom::Start(start))
                .map_err(|e| AgentError::io(log, e))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)
                .map_err(|e| AgentError::io(log, e))?;
            // Only whole lines: a line being written now is counted next time.
            let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let text = String::from_utf8_lossy(&buf[..whole]);
            (
                Some(text.lines().filter(|l| is_bounce(l)).count() as u64),
                start + whole as u64,
            )
        }
        None => (None, meta.len()),
    };
    fs::create_dir_all(state_dir).map_err(|e| AgentError::io(state_dir, e))?;
    let owner = fs::metadata(state_dir).map_err(|e| AgentError::io(state_dir, e))?;
    let json = serde_json::to_vec(&Offset {
        inode: meta.ino(),
        offset: end,
    })?;
    crate::fsutil::restore(
        &Root::new(state_dir),
        &format!("/{OFFSET_FILE}"),
        &PathState::File {
            mode: 0o600,
            uid: owner.uid(),
            gid: owner.gid(),
            content_hex: to_hex(&json),
        },
        0,
    )?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_lines() {
        assert!(is_bounce(
            "Dec  3 04:30:01 mx postfix/bounce[812]: 4RzX1c0bQkz9vB: sender non-delivery notification: 4RzX1d3kQkz9vC"
        ));
        assert!(!is_bounce(
            "Dec  3 04:30:01 mx postfix/bounce[812]: 4RzX1c0bQkz9vB: sender delay notification: 4RzX1d3kQkz9vC"
        ));
        assert!(is_bounce(
            "2026-12-03 04:30:01 1vQxyz-000123-AB <= <> R=1vQxyw-000120-CD U=Debian-exim P=local S=2048"
        ));
        assert!(!is_bounce(
            "2026-12-03 04:30:01 1vQxyz-000123-AB <= alice@campus.test U=alice P=local S=512"
        ));
    }

    #[test]
    fn counted_once_and_after_rotation() {
        let dir = std::env::temp_dir().join(format!("rg-maillog-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let (log, state) = (dir.join("mail.log"), dir.join("state"));
        let b = "x postfix/bounce[1]: A: sender non-delivery notification: B\n";
        fs::write(&log, b).unwrap();
        assert_eq!(bounces_since_last(&log, &state).unwrap(), None, "baseline");
        fs::write(
            &log,
            format!("{b}{b}{b}partial postfix/bounce[1]: A: sender non-"),
        )
        .unwrap();
        assert_eq!(bounces_since_last(&log, &state).unwrap(), Some(2));
        assert_eq!(bounces_since_last(&log, &state).unwrap(), Some(0));
        // Rotated: a new file with one bounce.
        fs::remove_file(&log).unwrap();
        fs::write(&log, b).unwrap();
        assert_eq!(bounces_since_last(&log, &state).unwrap(), Some(1));
        fs::remove_dir_all(&dir).unwrap();
    }
}
