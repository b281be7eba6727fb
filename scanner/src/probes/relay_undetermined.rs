//! No relay verdict: a host whose relay tests all stayed inconclusive (greylisting that did not
//! let the retry through, a rate limit, the host deadline, a gate that never opened, broken
//! sessions), or that refused or lost every session during its opening. Saying so is a finding
//! of its own, so that the registry and its pages say "not judged this time" rather than take
//! silence for a closed relay.

use std::collections::BTreeMap;

use relayguard_core::scan::{TestKind, Verdict};
use relayguard_core::{Finding, FindingKind};

use super::{Audited, OpeningSeen, Probe, finding};
use crate::smtp::{OpenFailure, SessionError};

/// Reports a host whose relay verdict could not be reached.
pub struct RelayUndetermined;

/// The most reasons named in the summary.
const REASONS: usize = 3;

impl Probe for RelayUndetermined {
    fn id(&self) -> &'static str {
        "relay-undetermined"
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let Some(why) = reason(seen) else {
            return Vec::new();
        };
        let (tests, lines) = match seen.opening {
            OpeningSeen::Failed { lines, .. } => (Vec::new(), lines.to_vec()),
            OpeningSeen::Opened { .. } => {
                let relay: Vec<_> = seen
                    .tests
                    .iter()
                    .filter(|t| t.result.kind == TestKind::Relay)
                    .collect();
                let mut ids: Vec<String> = relay.iter().map(|t| t.result.id.clone()).collect();
                ids.dedup();
                // One test's lines show the kind of answer; all of them would repeat it.
                let lines = relay.first().map(|t| t.lines.clone()).unwrap_or_default();
                (ids, lines)
            }
        };
        vec![finding(
            seen.rules,
            FindingKind::RelayUndetermined,
            format!("relay verdict not reached this time: {why}"),
            tests,
            lines,
        )]
    }
}

/// Why no relay verdict was reached, or `None` when one was (a relay test accepted, refused or
/// answered auth-required), or none was to be had (not SMTP, a permanent refusal of the session,
/// no greeting at all).
pub fn reason(seen: &Audited<'_>) -> Option<String> {
    if let OpeningSeen::Failed { reason, .. } = seen.opening {
        return match reason {
            OpenFailure::Refused(reply) if reply.class() == 4 => Some(format!(
                "the server refused a session with a temporary error ({})",
                reply.summary()
            )),
            OpenFailure::Lost(SessionError::HostDeadline) => {
                Some("the host deadline came before a session was open".into())
            }
            OpenFailure::Lost(e) => Some(format!("the first session was lost: {e}")),
            _ => None,
        };
    }
    let relay: Vec<_> = seen
        .tests
        .iter()
        .filter(|t| t.result.kind == TestKind::Relay)
        .collect();
    if relay.is_empty()
        || relay
            .iter()
            .any(|t| !matches!(t.result.verdict, Verdict::Inconclusive | Verdict::NotRun))
    {
        return None;
    }
    let mut why: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &relay {
        let r = &t.result;
        let text = r.note.as_deref().unwrap_or(r.reply.as_str());
        *why.entry(text).or_default() += 1;
    }
    let mut why: Vec<(&str, usize)> = why.into_iter().collect();
    why.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<String> = why
        .iter()
        .take(REASONS)
        .map(|(text, n)| format!("{text} ({n})"))
        .collect();
    let more = why.len().saturating_sub(REASONS);
    Some(format!(
        "all {} relay tests inconclusive: {}{}",
        relay.len(),
        named.join("; "),
        if more > 0 {
            format!("; and {more} other reasons")
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::TestRecord;
    use relayguard_core::rules::RuleSet;
    use relayguard_core::scan::{SmtpInfo, TestResult};

    fn record(id: &str, verdict: Verdict, note: Option<&str>) -> TestRecord {
        TestRecord {
            result: TestResult {
                id: id.into(),
                kind: TestKind::Relay,
                mail_from: Some("<p@x.example>".into()),
                argument: "<u@ext.example>".into(),
                verdict,
                reply: "451 4.7.1 Greylisted, try again later".into(),
                note: note.map(str::to_string),
                session: 1,
            },
            lines: Vec::new(),
        }
    }

    fn seen<'a>(rules: &'a RuleSet, smtp: &'a SmtpInfo, tests: &'a [TestRecord]) -> Audited<'a> {
        Audited {
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 25,
            external_domain: "ext.example",
            rules,
            opening: OpeningSeen::Opened {
                smtp,
                starttls_injection: None,
                lines: &[],
            },
            tests,
            desyncs: &[],
        }
    }

    #[test]
    fn only_a_host_with_every_relay_test_inconclusive_is_undetermined() {
        let rules = RuleSet::builtin().unwrap();
        let smtp = SmtpInfo::default();
        let grey = "greylisted, and again when retried after 310 s";
        let all = [
            record("a", Verdict::Inconclusive, Some(grey)),
            record("b", Verdict::Inconclusive, Some(grey)),
            record("c", Verdict::Inconclusive, Some("not run: rate limited")),
        ];
        let found = RelayUndetermined.findings(&seen(&rules, &smtp, &all));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::RelayUndetermined);
        assert_eq!(
            found[0].summary,
            format!(
                "relay verdict not reached this time: all 3 relay tests inconclusive: {grey} (2); not run: rate limited (1)"
            )
        );
        assert_eq!(found[0].evidence.tests, ["a", "b", "c"]);
        let judged = [
            record("a", Verdict::Inconclusive, Some(grey)),
            record("b", Verdict::Refused, None),
        ];
        assert!(
            RelayUndetermined
                .findings(&seen(&rules, &smtp, &judged))
                .is_empty()
        );
        let open = [record("a", Verdict::Accepted, None)];
        assert!(
            RelayUndetermined
                .findings(&seen(&rules, &smtp, &open))
                .is_empty()
        );
        assert!(
            RelayUndetermined
                .findings(&seen(&rules, &smtp, &[]))
                .is_empty()
        );
    }
}
