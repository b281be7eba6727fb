//! OpenSMTPD's queue: `smtpctl show queue` prints one line per envelope (one recipient of one
//! message), fields separated by `|`, as OpenSMTPD's smtpctl.c writes them:
//!
//! ```text
//! ID|SRC|TYPE|FLAGS|SENDER|RCPT|DEST|CREATION|EXPIRE|LASTTRY|RETRY|RUNSTATE|WHEN|ERROR
//! 900b960171fea18d|inet4|mta||@|carol@example.org|carol@example.org|1796107089|…|pending|368|Network error…
//! ```
//!
//! The message id is the envelope id's upper 32 bits. The null sender prints as `@` (empty
//! user and domain). Without a running daemon smtpctl reads the spool itself and the state is
//! `offline`. The queues are envelopes per state (`pending`, `inflight`, `offline`). The
//! message count and null senders count messages, not envelopes.

use std::collections::{BTreeMap, BTreeSet};

use relayguard_core::agent_report::{Mta, QueueHealth};

use super::{run_listing, unreadable};
use crate::command::CommandRunner;
use crate::error::Result;

/// Where smtpctl is installed (Linux packages, then the BSDs' ports).
pub const PROGRAMS: &[&str] = &["/usr/sbin/smtpctl", "/usr/local/sbin/smtpctl"];

/// What the report names as the source.
const SOURCE: &str = "smtpctl show queue";

/// Reads `smtpctl show queue` output into the queue health at time `now`.
pub fn parse(text: &str, now: u64) -> Result<QueueHealth> {
    let mut queues: BTreeMap<String, u64> = BTreeMap::new();
    let (mut messages, mut null_sender) = (BTreeSet::new(), BTreeSet::new());
    let mut oldest: Option<u64> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| unreadable(SOURCE, i + 1, line, why);
        // The error text is last and may itself hold `|`: only the first 13 fields count.
        let f: Vec<&str> = line.splitn(14, '|').collect();
        if f.len() < 13 {
            return Err(bad("fewer than 13 fields"));
        }
        let evpid = u64::from_str_radix(f[0], 16)
            .ok()
            .filter(|_| f[0].len() == 16)
            .ok_or_else(|| bad("no envelope id"))?;
        let created: u64 = f[7].parse().map_err(|_| bad("no creation time"))?;
        if f[11].is_empty() || !f[11].bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad("no run state"));
        }
        let msgid = evpid >> 32;
        messages.insert(msgid);
        if f[4] == "@" {
            null_sender.insert(msgid);
        }
        *queues.entry(f[11].to_string()).or_default() += 1;
        oldest = Some(oldest.map_or(created, |o| o.min(created)));
    }
    Ok(QueueHealth {
        mta: Mta::Opensmtpd,
        source: SOURCE.into(),
        queues,
        messages: messages.len() as u64,
        null_sender: null_sender.len() as u64,
        oldest_age_secs: oldest.map(|t| now.saturating_sub(t)),
        bounces_since_last: None,
    })
}

/// The queue health of the OpenSMTPD whose smtpctl is `program`.
pub fn gather(run: &dyn CommandRunner, program: &str, now: u64) -> Result<QueueHealth> {
    parse(&run_listing(run, program, &["show", "queue"])?, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the fixtures were recorded (seconds since the epoch).
    const RECORDED: u64 = 1_796_279_902;

    #[test]
    fn real_listing_with_the_daemon_running() {
        let h = parse(
            include_str!("../../tests/fixtures/queue/smtpctl-show-queue.txt"),
            RECORDED,
        )
        .unwrap();
        assert_eq!(h.mta, Mta::Opensmtpd);
        // Five envelopes of four messages: carol and dave share one.
        assert_eq!(h.messages, 4);
        assert_eq!(h.queues.values().sum::<u64>(), 5);
        assert_eq!(h.queues.get("inflight"), Some(&4));
        assert_eq!(h.queues.get("pending"), Some(&1));
        // <> → carol+dave, and the two bounces smtpd wrote (gone.test, the expired envelope).
        assert_eq!(h.null_sender, 3);
        // carol and dave's message was moved back two days before the run.
        assert_eq!(h.oldest_age_secs, Some(RECORDED - 1_796_107_089));
    }

    #[test]
    fn real_listing_read_offline() {
        let h = parse(
            include_str!("../../tests/fixtures/queue/smtpctl-show-queue-offline.txt"),
            RECORDED,
        )
        .unwrap();
        assert_eq!(h.messages, 4);
        assert_eq!(h.queues.get("offline"), Some(&5));
        assert_eq!(h.null_sender, 2);
        // The 5-day envelope, before it expired.
        assert_eq!(h.oldest_age_secs, Some(RECORDED - 1_795_847_889));
        assert_eq!(parse("", RECORDED).unwrap().messages, 0);
    }

    #[test]
    fn unreadable_output_is_an_error() {
        let e = parse("smtpctl: this program must be setgid opensmtpq\n", 0).unwrap_err();
        assert!(e.to_string().contains("smtpctl show queue line 1"), "{e}");
        let e = parse("xyz|inet4|mta||@|a@b|a@b|1|1|0|1|offline||\n", 0).unwrap_err();
        assert!(e.to_string().contains("no envelope id"), "{e}");
        // An error text with `|` in it is still one field.
        let h = parse(
            "900b960171fea18d|inet4|mta||@|a@b|a@b|100|100|0|1|pending|5|550 a|b\n",
            160,
        )
        .unwrap();
        assert_eq!((h.messages, h.oldest_age_secs), (1, Some(60)));
    }
}
