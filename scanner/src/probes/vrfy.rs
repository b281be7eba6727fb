//! VRFY: does the server tell a real user from a made-up one?

use relayguard_core::scan::Verdict;
use relayguard_core::{Finding, FindingKind};

use super::{
    Audited, HostFacts, Judgement, Probe, SmtpStep, TestSpec, accepted, finding, random_local_part,
};
use crate::smtp::Reply;

/// VRFY of `postmaster` (which RFC 5321 requires) and of a random user.
pub struct Vrfy;

impl Probe for Vrfy {
    fn id(&self) -> &'static str {
        "vrfy"
    }

    fn plan(&self, _host: &HostFacts<'_>) -> Vec<TestSpec> {
        vec![TestSpec {
            decisive: false,
            id: self.id().into(),
            step: SmtpStep::Commands(vec![
                "VRFY postmaster".into(),
                format!("VRFY {}", random_local_part()),
            ]),
        }]
    }

    fn judge(&self, replies: &[Reply]) -> Judgement {
        let [k, r] = replies else {
            return Judgement {
                verdict: Verdict::Inconclusive,
                reply: String::new(),
                note: Some("expected two VRFY replies".into()),
            };
        };
        let positive = |c: u16| c == 250 || c == 251;
        // "No such user" codes. A 501 is a syntax complaint (Exim wants a domain), not an
        // answer about the user.
        let unknown = |c: u16| matches!(c, 550 | 551 | 553);
        // VRFY leaks when it tells a real user from a made-up one.
        let leaks = (positive(k.code) && !positive(r.code) && r.class() != 4)
            || (k.is_positive() && unknown(r.code));
        let verdict = if leaks {
            Verdict::Accepted
        } else if k.class() == 4 || r.class() == 4 {
            Verdict::Inconclusive
        } else {
            Verdict::Refused
        };
        Judgement {
            verdict,
            reply: format!("{} / {}", k.summary(), r.summary()),
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
            FindingKind::VrfyEnabled,
            format!(
                "VRFY tells existing users from unknown ones ({})",
                first.result.reply
            ),
            hits.ids,
            hits.lines,
        )]
    }
}
