//! Exim's queue: `exim -bpc` counts the messages and `exim -bp` lists them, one header line
//! per message followed by its recipients and a blank line:
//!
//! ```text
//!  3h   300 1xZ0HP-0004Hk-0y <alice@campus.test>
//!           bob@example.org
//!
//!  5d  3.3K 1xZ0HP-0004Hx-1E <root@campus.test> *** frozen ***
//!           erin@example.org
//! ```
//!
//! The age is rounded by Exim (minutes up to 90, then hours up to 72, then days), so the
//! oldest age is as precise as that unit. The count comes from `-bpc`. The listing gives the
//! null senders (`<>`) and the frozen messages.

use std::collections::BTreeMap;

use relayguard_core::agent_report::{Mta, QueueHealth};

use super::{run_listing, unreadable};
use crate::command::CommandRunner;
use crate::error::{AgentError, Result};

/// Where Exim is installed (Debian's `exim4`, then upstream's name).
pub const PROGRAMS: &[&str] = &["/usr/sbin/exim4", "/usr/sbin/exim", "/usr/local/sbin/exim"];

/// What the report names as the source.
const SOURCE: &str = "exim -bpc, exim -bp";

/// One message header line of `exim -bp`.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    age_secs: u64,
    null_sender: bool,
    frozen: bool,
}

/// Reads a message header line, `None` when the line is not one (a recipient line).
fn header(line: &str) -> Option<Listed> {
    let mut t = line.split_whitespace();
    let (age, _size, id, sender) = (t.next()?, t.next()?, t.next()?, t.next()?);
    let unit = match age.as_bytes().last()? {
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86400,
        _ => return None,
    };
    let n: u64 = age[..age.len() - 1].parse().ok()?;
    if id.split('-').count() != 3 || !sender.starts_with('<') {
        return None;
    }
    Some(Listed {
        age_secs: n * unit,
        null_sender: sender == "<>",
        frozen: line.trim_end().ends_with("*** frozen ***"),
    })
}

/// Reads `exim -bpc` (`count`) and `exim -bp` (`listing`) into the queue health.
pub fn parse(count: &str, listing: &str) -> Result<QueueHealth> {
    let messages: u64 = count.trim().parse().map_err(|_| {
        AgentError::Refused(format!(
            "exim -bpc printed {:?}, not a message count",
            count.trim()
        ))
    })?;
    let mut listed = Vec::new();
    let mut in_message = false;
    for (i, line) in listing.lines().enumerate() {
        if line.trim().is_empty() {
            in_message = false;
            continue;
        }
        if let Some(h) = header(line) {
            listed.push(h);
            in_message = true;
        } else if !(in_message && line.starts_with("    ")) {
            // Recipients are indented under their message; anything else is not Exim's
            // listing as this parser knows it.
            return Err(unreadable("exim -bp", i + 1, line, "not a message line"));
        }
    }
    if listed.is_empty() && messages > 0 {
        return Err(AgentError::Refused(format!(
            "exim -bpc counts {messages} messages but exim -bp listed none"
        )));
    }
    let frozen = listed.iter().filter(|m| m.frozen).count() as u64;
    let mut queues = BTreeMap::new();
    queues.insert("frozen".to_string(), frozen);
    queues.insert(
        "waiting".to_string(),
        (listed.len() as u64).saturating_sub(frozen),
    );
    Ok(QueueHealth {
        mta: Mta::Exim,
        source: SOURCE.into(),
        queues,
        messages,
        null_sender: listed.iter().filter(|m| m.null_sender).count() as u64,
        oldest_age_secs: listed.iter().map(|m| m.age_secs).max(),
        bounces_since_last: None,
    })
}

/// The queue health of the Exim at `program`.
pub fn gather(run: &dyn CommandRunner, program: &str) -> Result<QueueHealth> {
    let count = run_listing(run, program, &["-bpc"])?;
    let listing = run_listing(run, program, &["-bp"])?;
    parse(&count, &listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BP: &str = include_str!("../../tests/fixtures/queue/exim-bp.txt");
    const BPC: &str = include_str!("../../tests/fixtures/queue/exim-bpc.txt");

    #[test]
    fn real_listing() {
        let h = parse(BPC, BP).unwrap();
        assert_eq!(h.mta, Mta::Exim);
        assert_eq!(h.messages, 4);
        // <> → carol, dave (queued with -f '<>') and the bounce Exim wrote for gone.test.
        assert_eq!(h.null_sender, 2);
        assert_eq!(h.queues.get("frozen"), Some(&1));
        assert_eq!(h.queues.get("waiting"), Some(&3));
        // " 5d" is the frozen message: 5 days, at Exim's precision.
        assert_eq!(h.oldest_age_secs, Some(5 * 86400));
    }

    #[test]
    fn age_units() {
        let line = |age: &str| format!("{age}   300 1xZ0HP-0004Hk-0y <alice@campus.test>");
        assert_eq!(header(&line(" 3h")).unwrap().age_secs, 3 * 3600);
        assert_eq!(header(&line("50h")).unwrap().age_secs, 50 * 3600);
        assert_eq!(header(&line(" 0m")).unwrap().age_secs, 0);
        assert_eq!(header(&line("123d")).unwrap().age_secs, 123 * 86400);
        assert!(header(&line(" 3y")).is_none());
        assert!(header("          bob@example.org").is_none());
    }

    #[test]
    fn empty_queue() {
        let h = parse(
            include_str!("../../tests/fixtures/queue/exim-bpc-empty.txt"),
            include_str!("../../tests/fixtures/queue/exim-bp-empty.txt"),
        )
        .unwrap();
        assert_eq!((h.messages, h.null_sender, h.oldest_age_secs), (0, 0, None));
    }

    #[test]
    fn unreadable_output_is_an_error() {
        // Not a count.
        let e = parse("exim: permission denied\n", BP).unwrap_err();
        assert!(e.to_string().contains("not a message count"), "{e}");
        // A count but no listing: never a silent zero.
        let e = parse("4\n", "").unwrap_err();
        assert!(e.to_string().contains("listed none"), "{e}");
        // A line that is neither a message nor one of its recipients.
        let e = parse("1\n", "Exim is not configured\n").unwrap_err();
        assert!(e.to_string().contains("exim -bp line 1"), "{e}");
    }
}
