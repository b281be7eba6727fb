//! Bounces a mail server generated since the last report, counted in its mail log.
//!
//! The log is read from the offset the previous report saved (`mail-log.offset` in the state
//! directory: the file's inode and the byte offset), so each line is counted once however
//! large the log grows. A different inode or a shorter file means the log was rotated: it is
//! read from its start. The first run has no baseline: it saves the offset and reports nothing.
//!
//! What a bounce looks like depends on the MTA ([`count_bounces`]):
//! - Postfix: `postfix/bounce[PID]: ID: sender non-delivery notification: NEWID` (delay
//!   warnings say "sender delay notification" and are not counted);
//! - Exim (its own main log): a message received from `<>` that names the message it reports
//!   on, `NEWID <= <> R=ID U=Debian-exim P=local`. Bounces received from other servers have
//!   no `R=` and are not counted;
//! - Sendmail (syslog): `ID: NEWID: DSN: REASON`, and the returns to the postmaster,
//!   `ID: NEWID: return to sender: …` and `ID: NEWID: postmaster notify: …`. A delay warning
//!   (`DSN: Warning: …`) and a success notice (`DSN: Return receipt`) are not counted;
//! - OpenSMTPD (syslog): smtpd writes a bounce into its own queue over a local session, so a
//!   bounce is an `smtp envelope … from=<>` line of a session that `smtp connected
//!   address=local`. A session cut by the read offset is counted only if its `connected`
//!   line is in the part read.
//!
//! The offset file also names the log. Reading another log (another MTA) starts a new
//! baseline instead of counting a different file from an offset that is not its own.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use relayguard_core::agent_report::Mta;
use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::fsutil::{PathState, to_hex};
use crate::root::Root;

/// The state file's name in the state directory.
pub const OFFSET_FILE: &str = "mail-log.offset";

/// Where the previous report stopped reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Offset {
    inode: u64,
    offset: u64,
    /// The log this offset belongs to; absent in offsets saved before it was recorded.
    #[serde(default)]
    log: Option<PathBuf>,
}

/// Where each MTA's log is by default, first match wins: Exim writes its own main log
/// (Debian, then Red Hat and the BSDs); the others log through syslog's mail facility
/// (Debian's `mail.log`, then `maillog` elsewhere).
pub fn default_logs(mta: Mta) -> &'static [&'static str] {
    match mta {
        Mta::Exim => &[
            "/var/log/exim4/mainlog",
            "/var/log/exim/main.log",
            "/var/log/exim/mainlog",
        ],
        _ => &["/var/log/mail.log", "/var/log/maillog"],
    }
}

/// Whether a Postfix log line records a bounce it generated.
fn postfix_bounce(line: &str) -> bool {
    line.contains("/bounce[") && line.contains(": sender non-delivery notification: ")
}

/// Whether an Exim main log line records a bounce it generated.
fn exim_bounce(line: &str) -> bool {
    line.contains(" <= <> R=")
}

/// Whether a Sendmail log line records a bounce it generated.
fn sendmail_bounce(line: &str) -> bool {
    if let Some((_, reason)) = line.split_once(": DSN: ") {
        return !reason.starts_with("Warning:") && !reason.starts_with("Return receipt");
    }
    line.contains(": return to sender: ") || line.contains(": postmaster notify: ")
}

/// OpenSMTPD's bounces: `from=<>` envelopes of local sessions.
fn opensmtpd_bounces(text: &str) -> u64 {
    // "smtpd[PID]: SESSION smtp connected address=local host=…"
    let session = |l: &str, what: &str| {
        let (_, rest) = l.split_once("]: ")?;
        let (id, rest) = rest.split_once(' ')?;
        rest.starts_with(what).then_some(id.to_string())
    };
    let mut local = BTreeSet::new();
    let mut n = 0;
    for l in text.lines().filter(|l| l.contains("smtpd[")) {
        if l.contains(" address=local ") {
            if let Some(id) = session(l, "smtp connected ") {
                local.insert(id);
            }
        } else if l.contains(" from=<> ") {
            if let Some(id) = session(l, "smtp envelope ") {
                n += u64::from(local.contains(&id));
            }
        } else if let Some(id) = session(l, "smtp disconnected ") {
            local.remove(&id);
        }
    }
    n
}

/// Counts the bounces `mta` generated in a stretch of its log.
pub fn count_bounces(mta: Mta, text: &str) -> u64 {
    let lines = |f: fn(&str) -> bool| text.lines().filter(|l| f(l)).count() as u64;
    match mta {
        Mta::Postfix => lines(postfix_bounce),
        Mta::Exim => lines(exim_bounce),
        Mta::Sendmail => lines(sendmail_bounce),
        Mta::Opensmtpd => opensmtpd_bounces(text),
        _ => 0,
    }
}

/// Counts the bounces `mta` generated in `log` since the offset saved in `state_dir`, and
/// saves the new one. `Ok(None)` on the first run (no baseline yet) or when there is no log.
pub fn bounces_since_last(mta: Mta, log: &Path, state_dir: &Path) -> Result<Option<u64>> {
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
        // Another log's offset: no baseline for this one.
        Some(p) if p.log.as_deref().is_some_and(|l| l != log) => None,
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
            (Some(count_bounces(mta, &text)), start + whole as u64)
        }
        None => (None, meta.len()),
    };
    fs::create_dir_all(state_dir).map_err(|e| AgentError::io(state_dir, e))?;
    let owner = fs::metadata(state_dir).map_err(|e| AgentError::io(state_dir, e))?;
    let json = serde_json::to_vec(&Offset {
        inode: meta.ino(),
        offset: end,
        log: Some(log.to_path_buf()),
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
    fn postfix_lines() {
        let n = |l: &str| count_bounces(Mta::Postfix, l);
        assert_eq!(
            n(
                "Dec  3 04:30:01 mx postfix/bounce[812]: 4RzX1c0bQkz9vB: sender non-delivery notification: 4RzX1d3kQkz9vC"
            ),
            1
        );
        assert_eq!(
            n(
                "Dec  3 04:30:01 mx postfix/bounce[812]: 4RzX1c0bQkz9vB: sender delay notification: 4RzX1d3kQkz9vC"
            ),
            0
        );
    }

    #[test]
    fn exim_mainlog() {
        // The real main log: two messages arrived from <> (one submitted so, one the bounce
        // Exim wrote for gone.test); only the one with R= is Exim's own.
        let log = include_str!("../tests/fixtures/queue/exim-mainlog");
        assert_eq!(log.matches(" <= <> ").count(), 2);
        assert_eq!(count_bounces(Mta::Exim, log), 1);
        assert_eq!(
            count_bounces(
                Mta::Exim,
                "2026-12-03 04:30:01 1vQxyz-000123-AB <= <> H=mx.example.org [192.0.2.7] P=esmtp S=2048"
            ),
            0,
            "a bounce from another server"
        );
    }

    #[test]
    fn sendmail_syslog() {
        // The real syslog: one DSN for the returned message.
        let log = include_str!("../tests/fixtures/queue/sendmail-maillog");
        assert_eq!(count_bounces(Mta::Sendmail, log), 1);
        // Real lines of an earlier recording run, where the DSNs failed too and went to the
        // postmaster.
        let more = "\
Dec  3 06:33:59 mx sendmail[7426]: 6B36TxZZ022697: 6B36XxEd007426: DSN: Host unknown (Name server: example.org: host not found)
Dec  3 06:33:59 mx sendmail[7426]: 6B36XxEd007426: 6B36XxEe007426: return to sender: Host unknown (Name server: campus.test: host not found)
Dec  3 06:33:59 mx sendmail[7426]: 6B36Vxh0032537: 6B36XxEh007426: postmaster notify: Host unknown (Name server: example.org: host not found)
Dec  3 06:33:59 mx sendmail[7426]: 6B36XxEh007426: to=postmaster, delay=00:00:00, mailer=local, pri=31265, stat=queued
";
        assert_eq!(count_bounces(Mta::Sendmail, more), 3);
        assert_eq!(
            count_bounces(
                Mta::Sendmail,
                "Dec  3 10:36:31 mx sm-mta[20975]: 6B36aTdk020807: 6B36aVsM020975: DSN: Warning: could not send message for past 4 hours"
            ),
            0,
            "a delay warning"
        );
    }

    #[test]
    fn opensmtpd_syslog() {
        // The real syslog of two runs: the gone.test bounce, then the expired envelope's. The
        // message submitted over SMTP from <> (carol, dave) came from 127.0.0.1, not locally.
        let log = include_str!("../tests/fixtures/queue/opensmtpd-maillog");
        assert_eq!(log.matches(" from=<> ").count(), 4);
        assert_eq!(count_bounces(Mta::Opensmtpd, log), 2);
        assert_eq!(count_bounces(Mta::Postfix, log), 0);
    }

    #[test]
    fn counted_once_and_after_rotation() {
        let dir = std::env::temp_dir().join(format!("rg-maillog-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let (log, state) = (dir.join("mail.log"), dir.join("state"));
        let b = "x postfix/bounce[1]: A: sender non-delivery notification: B\n";
        fs::write(&log, b).unwrap();
        let since = |log: &Path| bounces_since_last(Mta::Postfix, log, &state).unwrap();
        assert_eq!(since(&log), None, "baseline");
        fs::write(
            &log,
            format!("{b}{b}{b}partial postfix/bounce[1]: A: sender non-"),
        )
        .unwrap();
        assert_eq!(since(&log), Some(2));
        assert_eq!(since(&log), Some(0));
        // Rotated: a new file with one bounce.
        fs::remove_file(&log).unwrap();
        fs::write(&log, b).unwrap();
        assert_eq!(since(&log), Some(1));
        // Another log (another MTA's): a new baseline, not an offset from the other file.
        let other = dir.join("mainlog");
        fs::write(&other, format!("{b}{b}{b}{b}")).unwrap();
        assert_eq!(since(&other), None);
        fs::write(&other, format!("{b}{b}{b}{b}{b}")).unwrap();
        assert_eq!(since(&other), Some(1));
        fs::remove_dir_all(&dir).unwrap();
    }
}
