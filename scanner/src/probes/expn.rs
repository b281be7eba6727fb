//! EXPN: does the server expand lists and aliases?

use relayguard_core::scan::Verdict;
use relayguard_core::{Finding, FindingKind};

use super::{Audited, HostFacts, Judgement, Probe, SmtpStep, TestSpec, accepted, finding};
use crate::smtp::Reply;

/// EXPN of `postmaster`.
pub struct Expn;

impl Probe for Expn {
    fn id(&self) -> &'static str {
        "expn"
    }

    fn plan(&self, _host: &HostFacts<'_>) -> Vec<TestSpec> {
        vec![TestSpec {
            decisive: false,
            id: self.id().into(),
            step: SmtpStep::Commands(vec!["EXPN postmaster".into()]),
        }]
    }

    fn judge(&self, replies: &[Reply]) -> Judgement {
        let Some(reply) = replies.first() else {
            return Judgement {
                verdict: Verdict::Inconclusive,
                reply: String::new(),
                note: Some("expected an EXPN reply".into()),
            };
        };
        let verdict = match reply.code {
            250 | 251 => Verdict::Accepted,
            400..=499 => Verdict::Inconclusive,
            _ => Verdict::Refused,
        };
        Judgement {
            verdict,
            reply: reply.summary(),
            note: None,
        }
    }

    fn findings(&self, seen: &Audited<'_>) -> Vec<Finding> {
        let hits = accepted(seen.tests, &self.kind());
        let Some(first) = hits.hits.first() else {
            return Vec::new();
        };
        vec![finding(
            seen.rules,
            FindingKind::ExpnEnabled,
            format!(
                "EXPN expands {} ({})",
                first.result.argument, first.result.reply
            ),
            hits.ids,
            hits.lines,
        )]
    }
}
