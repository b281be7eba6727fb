//! Greylisting: a server that defers every new (client, sender, recipient) triplet with a 4xx
//! (`450 4.2.0 … Greylisted` from postgrey, `451 4.7.1` from others) and accepts the same
//! triplet once it comes back after a delay. A test answered so is not judged; it is run again
//! with the very same envelope (or commands) after `greylist_wait`, as a legitimate client
//! retries.
//!
//! While it waits, the host gives its sweep audit slot back (other hosts are audited
//! meanwhile), and its deadline is moved for the retry only: to the end of the wait plus as
//! long as its tests took the first time and one command timeout, never more than a second
//! `host_deadline`.

use std::sync::Arc;
use std::time::Duration;

use relayguard_core::Transcript;
use relayguard_core::scan::Verdict;
use tokio::time::Instant;

use super::run::{Done, Pool, run_pool};
use super::schedule::{PlannedTest, deal};
use super::{AuditSlot, Host};
use crate::probes::verdict::is_greylisting;

/// How far the deadline is moved while a host only waits (for its delay, then for a slot):
/// nothing talks to the host meanwhile, and the retry sets it properly once it can start.
const WAITING: Duration = Duration::from_secs(24 * 3600);

/// Whether a finished test was deferred by greylisting: left inconclusive by a 4xx that says
/// so (to RCPT, or to VRFY, which Postfix checks with the same recipient restrictions).
fn greylisted(done: &Done) -> bool {
    let r = &done.record.result;
    r.verdict == Verdict::Inconclusive
        && r.reply
            .split(" / ")
            .any(|reply| reply.starts_with('4') && is_greylisting(&reply.to_ascii_lowercase()))
}

/// When a test's last line was seen, in ms since the audit started.
fn last_ms(done: &Done) -> Option<u64> {
    done.record.lines.last().map(|l| l.ms)
}

/// Runs the greylisted tests of `done` once more with the same envelopes after the host's
/// greylisting wait, and puts their new results in place, each noting "greylisted, retried
/// after N s". Returns the host's note about it, or `None` when nothing was greylisted.
pub(super) async fn retry(
    host: &Arc<Host>,
    planned: &[PlannedTest],
    done: &mut [Done],
    transcript: &mut Transcript,
    slot: &mut AuditSlot,
) -> Option<String> {
    let deferred: Vec<usize> = (0..done.len()).filter(|&i| greylisted(&done[i])).collect();
    if deferred.is_empty() {
        return None;
    }
    let wait = host.config.greylist_wait;
    let count = deferred.len();
    if wait.is_zero() {
        return Some(format!(
            "greylisting: {count} tests were deferred and not retried (--greylist-wait 0)"
        ));
    }
    if let Some(why) = host.refused.get() {
        return Some(format!(
            "greylisting: {count} tests were deferred and not retried ({why})"
        ));
    }
    let first_round = host.started.elapsed();
    let last = deferred.iter().filter_map(|&i| last_ms(&done[i])).max();
    let due = host.started + Duration::from_millis(last.unwrap_or(0)) + wait;

    // Wait without holding anything the sweep needs.
    host.deadline.set(Instant::now().max(due) + WAITING);
    slot.release();
    tokio::time::sleep_until(due).await;
    slot.reacquire().await;
    let budget = (first_round + host.config.command_timeout).min(host.config.host_deadline);
    host.deadline.set(Instant::now() + budget);

    let tests: Vec<PlannedTest> = deferred
        .iter()
        .filter_map(|&i| planned.iter().find(|p| p.index == done[i].index).cloned())
        .collect();
    let per_session = host.config.tests_per_session;
    let (first, chunks) = deal(Vec::new(), tests, per_session);
    let workers = usize::from(!first.is_empty()) + chunks.len();
    let tests = first
        .into_iter()
        .chain(chunks.into_iter().flatten())
        .collect();
    let mut t = Transcript::default();
    let again = run_pool(
        host,
        Arc::new(Pool::new(tests, per_session)),
        workers,
        &mut t,
    )
    .await;
    transcript.append(t);

    let mut answered = 0;
    for retried in again {
        let Some(old) = done.iter_mut().find(|d| d.index == retried.index) else {
            continue;
        };
        let before = last_ms(old).unwrap_or(0);
        let after = retried.record.lines.first().map(|l| l.ms);
        let still = greylisted(&retried);
        let mut new = retried;
        let result = &mut new.record.result;
        let note = match after {
            None => format!(
                "greylisted; the retry did not run: {}",
                result.note.as_deref().unwrap_or("no session")
            ),
            Some(after) => {
                let secs = after.saturating_sub(before) / 1000;
                let head = if still {
                    format!("greylisted, and again when retried after {secs} s")
                } else {
                    format!("greylisted, retried after {secs} s")
                };
                match &result.note {
                    Some(n) if !still => format!("{head}; {n}"),
                    _ => head,
                }
            }
        };
        if !still && after.is_some() && result.verdict != Verdict::Inconclusive {
            answered += 1;
        }
        result.note = Some(note);
        // The deferral stays in the evidence, before the answer.
        let mut lines = std::mem::take(&mut old.record.lines);
        lines.append(&mut new.record.lines);
        new.record.lines = lines;
        *old = new;
    }
    Some(format!(
        "greylisting: {count} tests were deferred and retried with the same envelope after {} s; {answered} got a definite answer",
        wait.as_secs()
    ))
}
