//! Sendmail's queue: `mailq` (`sendmail -bp`) lists each queue directory with its count, then
//! one line per message (id, size, queue time, sender) followed by indented lines (the
//! deferral reason, the recipients), and at the end the total:
//!
//! ```text
//!         /var/spool/mqueue (4 requests)
//! -----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------
//! 6B36aVsM020975     1227 Thu Dec  3 06:36 MAILER-DAEMON
//!                  (Deferred: Connection refused by [127.0.0.1])
//!                                          alice@campus.test
//!                 Total requests: 4
//! ```
//!
//! The queue time has no year and is in the host's time zone. The agent runs
//! `sendmail -bp -OTimeZoneSpec=UTC0`, so the times are UTC. The year is the latest one, no
//! later than now, whose calendar puts that date on the printed weekday. A bounce Sendmail wrote
//! has the sender `MAILER-DAEMON`; a message submitted with the null sender shows `<>`.

use std::collections::BTreeMap;

use relayguard_core::agent_report::{Mta, QueueHealth};

use super::{run_listing, unreadable};
use crate::command::CommandRunner;
use crate::error::{AgentError, Result};

/// Where Sendmail's own binary is (Debian and the BSDs, older Debian, Red Hat's alternatives
/// name). `/usr/sbin/sendmail` is not used: every MTA installs one.
pub const PROGRAMS: &[&str] = &[
    "/usr/libexec/sendmail/sendmail",
    "/usr/lib/sm.bin/sendmail",
    "/usr/sbin/sendmail.sendmail",
];

/// What the report names as the source.
const SOURCE: &str = "mailq (sendmail -bp)";

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a time (seconds since the epoch, UTC).
fn year_of(t: u64) -> i64 {
    let days = (t / 86400) as i64;
    let mut y = 1970 + days / 366;
    while days_from_civil(y + 1, 1, 1) <= days {
        y += 1;
    }
    y
}

/// The time of `Thu Dec  3 06:36` (UTC) at or before `now` (a day's slack for clock skew).
fn queue_time(wday: &str, mon: &str, day: &str, hm: &str, now: u64) -> Option<u64> {
    let m = MONTHS.iter().position(|x| *x == mon)? as u32 + 1;
    let d: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let (h, min) = hm.split_once(':')?;
    let (h, min): (i64, i64) = (h.parse().ok()?, min.parse().ok()?);
    let wd = WEEKDAYS.iter().position(|x| *x == wday)? as i64;
    let y0 = year_of(now);
    // A weekday repeats on the same date within 11 years at most.
    (0..12).map(|back| y0 - back).find_map(|y| {
        let days = days_from_civil(y, m, d);
        let t = days * 86400 + h * 3600 + min * 60;
        (days.rem_euclid(7) == wd && t <= now as i64 + 86400).then_some(t.max(0) as u64)
    })
}

/// Reads `sendmail -bp` output into the queue health at time `now`.
pub fn parse(text: &str, now: u64) -> Result<QueueHealth> {
    let mut queues: BTreeMap<String, u64> = BTreeMap::new();
    let (mut listed, mut null_sender) = (0u64, 0u64);
    let mut oldest: Option<u64> = None;
    let mut total: Option<u64> = None;
    for (i, line) in text.lines().enumerate() {
        let bad = |why: &str| unreadable(SOURCE, i + 1, line, why);
        let t = line.trim();
        if t.is_empty() || t.starts_with("-----Q-ID-----") {
            continue;
        }
        if let Some(n) = t.strip_prefix("Total requests:") {
            total = Some(n.trim().parse().map_err(|_| bad("no total"))?);
            continue;
        }
        if t.starts_with('/') {
            // "/var/spool/mqueue (4 requests)" or "/var/spool/mqueue is empty".
            let (dir, n) = if let Some(dir) = t.strip_suffix(" is empty") {
                (dir, 0)
            } else {
                let (dir, rest) = t.split_once(" (").ok_or_else(|| bad("no request count"))?;
                let n = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| bad("no request count"))?;
                (dir, n)
            };
            *queues.entry(dir.to_string()).or_default() += n;
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            // A deferral reason or a recipient of the message above.
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        if f.len() < 7 || f[1].parse::<u64>().is_err() {
            return Err(bad("not a message line"));
        }
        let at = queue_time(f[2], f[3], f[4], f[5], now).ok_or_else(|| bad("no queue time"))?;
        listed += 1;
        let sender = f[6..].join(" ");
        if sender == "MAILER-DAEMON" || sender == "<>" {
            null_sender += 1;
        }
        oldest = Some(oldest.map_or(at, |o| o.min(at)));
    }
    let counted: u64 = total.unwrap_or_else(|| queues.values().sum());
    // Sendmail may print fewer than it counts (MaxQueueRunSize), never more; and a queue it
    // counts must show at least one line, or this is not the listing the parser knows.
    if listed > counted || (counted > 0 && listed == 0) {
        return Err(AgentError::Refused(format!(
            "{SOURCE}: listed {listed} messages but counted {counted}"
        )));
    }
    if queues.is_empty() && total.is_none() {
        return Err(AgentError::Refused(format!(
            "{SOURCE}: no queue directory and no total in {:?}",
            text.chars().take(200).collect::<String>()
        )));
    }
    Ok(QueueHealth {
        mta: Mta::Sendmail,
        source: SOURCE.into(),
        queues,
        messages: counted,
        null_sender,
        oldest_age_secs: oldest.map(|t| now.saturating_sub(t)),
        bounces_since_last: None,
    })
}

/// The queue health of the Sendmail at `program`.
pub fn gather(run: &dyn CommandRunner, program: &str, now: u64) -> Result<QueueHealth> {
    parse(
        &run_listing(run, program, &["-bp", "-OTimeZoneSpec=UTC0"])?,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the fixture was recorded: 2026-12-03 06:36:40 UTC.
    const RECORDED: u64 = 1_796_279_800;

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(year_of(RECORDED), 2026);
        assert_eq!(year_of(days_from_civil(2024, 12, 31) as u64 * 86400), 2024);
        assert_eq!(
            queue_time("Thu", "Dec", "3", "06:36", RECORDED),
            Some(RECORDED - 40)
        );
        // October 24 was a Saturday in 2026.
        assert_eq!(
            queue_time("Sat", "Oct", "24", "06:36", RECORDED),
            Some(RECORDED - 40 - 40 * 86400)
        );
        // December 31 is later than now: last year's, a Wednesday in 2025.
        let t = queue_time("Wed", "Dec", "31", "23:59", RECORDED).unwrap();
        assert_eq!(year_of(t), 2025);
        // The weekday decides: a Friday December 31 was 2021.
        assert_eq!(
            year_of(queue_time("Fri", "Dec", "31", "12:00", RECORDED).unwrap()),
            2021
        );
        assert_eq!(queue_time("Thu", "Dez", "3", "06:36", RECORDED), None);
    }

    #[test]
    fn real_listing() {
        let h = parse(
            include_str!("../../tests/fixtures/queue/sendmail-bp.txt"),
            RECORDED,
        )
        .unwrap();
        assert_eq!(h.mta, Mta::Sendmail);
        assert_eq!(h.messages, 4);
        assert_eq!(h.queues.get("/tmp/health-rec/sm/mqueue"), Some(&4));
        // The DSN (MAILER-DAEMON) and the message submitted with -f '<>'.
        assert_eq!(h.null_sender, 2);
        // Moved back 40 days; the listing has minutes, the recording seconds.
        assert_eq!(h.oldest_age_secs, Some(40 * 86400 + 40));
    }

    #[test]
    fn empty_queue() {
        let h = parse(
            include_str!("../../tests/fixtures/queue/sendmail-bp-empty.txt"),
            RECORDED,
        )
        .unwrap();
        assert_eq!((h.messages, h.oldest_age_secs), (0, None));
        assert_eq!(h.queues.len(), 1);
    }

    #[test]
    fn unreadable_output_is_an_error() {
        let e = parse("sendmail: cannot open queue\n", RECORDED).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        // Counted but not listed: never a silent zero.
        let e = parse("\t\t/var/spool/mqueue (3 requests)\n", RECORDED).unwrap_err();
        assert!(e.to_string().contains("listed 0"), "{e}");
        let e = parse("", RECORDED).unwrap_err();
        assert!(e.to_string().contains("no queue directory"), "{e}");
    }
}
