//! Data sent when no reply was due: a second greeting, an unsolicited reply, bytes after QUIT.
//! The audit already discarded the verdicts of such sessions and ran their tests again; this
//! probe reports that it happened, since a server out of step with its clients is broken (or
//! built to mislead scanners) and a legitimate client would misread it too.

use relayguard_core::{Finding, FindingKind};

use super::{Audited, Probe, finding};

/// Reports desynchronised sessions.
pub struct SmtpDesync;

impl Probe for SmtpDesync {
    fn id(&self) -> &'static str {
        "smtp-desync"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let Some(first) = seen.desyncs.iter().find(|l| l.text.starts_with("desync:")) else {
            return Vec::new();
        };
        let sessions = {
            let mut s: Vec<u32> = seen
                .desyncs
                .iter()
                .filter(|l| l.text.starts_with("desync:"))
                .map(|l| l.session)
                .collect();
            s.dedup();
            s.len()
        };
        vec![finding(
            seen.rules,
            FindingKind::SmtpDesync,
            format!(
                "sent data when no reply was due in {sessions} session(s); their verdicts were discarded ({})",
                first.text.trim_start_matches("desync: ")
            ),
            Vec::new(),
            seen.desyncs.to_vec(),
        )]
    }
}
