//! What relayguard asks a server and what it concludes from the answers: one file per probe,
//! and the one list of probes, [`PROBES`], that the audit runs.
//!
//! A probe plans its tests for a host from what the first session learned ([`HostFacts`]);
//! each test is a [`SmtpStep`], plain data the audit deals out to sessions and hands back to
//! [`Probe::run`] on a live connection. When every test has run, each probe may revise its
//! verdicts in the light of all results ([`Probe::review`]) and draws its findings from the
//! opening and all results ([`Probe::findings`]). Probes that only read the opening plan
//! nothing and just draw findings.
//!
//! A new probe is a new file here with a unit struct implementing [`Probe`], one line in
//! [`PROBES`], and, when it raises a new kind of finding, that kind's one line in
//! `relayguard_core::finding`.

pub mod auth_before_tls;
pub mod backscatter;
pub mod expn;
pub mod names;
pub mod no_starttls;
pub mod not_smtp;
pub mod relay;
pub mod relay_control;
pub mod relay_undetermined;
pub mod smtp_desync;
pub mod starttls_injection;
pub mod step;
pub mod tls_certificate_invalid;
pub mod tls_handshake_failed;
pub mod verdict;
pub mod vrfy;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use rand::RngExt;
use relayguard_core::rules::RuleSet;
use relayguard_core::scan::{SmtpInfo, TestKind, TestResult, Verdict};
use relayguard_core::{Evidence, Finding, FindingKind, TranscriptLine};

use crate::smtp::{Connection, OpenFailure, Reply, SessionError};
pub use names::OwnNames;
pub use step::{Judgement, SmtpStep, StepOutcome};

/// Every probe, in the order their tests are planned and run: the cheap probes of the first
/// session, then backscatter and the relay controls (an unknown user at every domain the relay
/// vectors route through: the controls the relay probe's review depends on; backscatter's own
/// review runs first and needs the relay results), then the relay vectors, then the probes that only read the opening.
pub static PROBES: &[&dyn Probe] = &[
    &vrfy::Vrfy,
    &expn::Expn,
    &backscatter::Backscatter,
    &relay_control::RelayControl,
    &relay::Relay,
    &auth_before_tls::AuthBeforeTls,
    &no_starttls::NoStarttls,
    &tls_certificate_invalid::TlsCertificateInvalid,
    &tls_handshake_failed::TlsHandshakeFailed,
    &starttls_injection::StarttlsInjection,
    &not_smtp::NotSmtp,
    &smtp_desync::SmtpDesync,
    &relay_undetermined::RelayUndetermined,
];

/// A future a probe returns from [`Probe::run`].
pub type StepFuture<'a> =
    Pin<Box<dyn Future<Output = Result<StepOutcome, SessionError>> + Send + 'a>>;

/// One probe: its tests, how they run, and what they mean.
pub trait Probe: Send + Sync {
    /// The probe's stable id; also the `kind` of its test results.
    fn id(&self) -> &'static str;

    /// The kind its test results carry.
    fn kind(&self) -> TestKind {
        TestKind::new(self.id())
    }

    /// Where its tests run.
    fn placement(&self) -> Placement {
        Placement::First
    }

    /// The tests to run on this host, given what the first session learned. None by default.
    fn plan(&self, _host: &HostFacts<'_>) -> Vec<TestSpec> {
        Vec::new()
    }

    /// Runs one of its steps on a connection. By default an envelope step runs as MAIL FROM,
    /// RCPT TO, RSET and is judged by the RCPT reply ([`step::run_envelope`]); commands are
    /// sent one after another and their replies judged by [`Probe::judge`].
    fn run<'a>(&'a self, conn: &'a mut Connection, step: &'a SmtpStep) -> StepFuture<'a> {
        Box::pin(async move {
            match step {
                SmtpStep::Envelope {
                    mail_from,
                    rcpt_to,
                    fallback_sender,
                } => step::run_envelope(conn, mail_from, rcpt_to, fallback_sender.as_deref()).await,
                SmtpStep::Commands(lines) => {
                    let replies = step::run_commands(conn, lines).await?;
                    Ok(StepOutcome::judged(None, self.judge(&replies)))
                }
            }
        })
    }

    /// The verdict of a [`SmtpStep::Commands`] step, from its replies (one per command).
    fn judge(&self, replies: &[Reply]) -> Judgement {
        Judgement {
            verdict: Verdict::Inconclusive,
            reply: replies
                .iter()
                .map(Reply::summary)
                .collect::<Vec<_>>()
                .join(" / "),
            note: Some(format!(
                "the {} probe reads no verdict from replies",
                self.id()
            )),
        }
    }

    /// Revises verdicts once every test has run (all probes' results, in plan order).
    fn review(&self, _tests: &mut [TestRecord], _host: &HostFacts<'_>) {}

    /// The findings drawn from the opening and every result.
    fn findings(&self, _seen: &Audited<'_>) -> Vec<Finding> {
        Vec::new()
    }
}

/// Where a probe's tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the first session, in plan order, before any spread test.
    First,
    /// Dealt evenly over fresh sessions, after topping up the first one.
    Spread,
}

/// What the first session learned about a host, and the settings the probes plan with.
#[derive(Debug, Clone, Copy)]
pub struct HostFacts<'a> {
    /// The host's address.
    pub ip: IpAddr,
    /// The audited port.
    pub port: u16,
    /// What the host calls itself.
    pub names: &'a OwnNames,
    /// The third-party domain used in relay vectors.
    pub external_domain: &'a str,
    /// Local part of the probe sender.
    pub probe_sender: &'a str,
    /// Local part of the probe recipient.
    pub probe_recipient: &'a str,
    /// The rules.
    pub rules: &'a RuleSet,
}

impl HostFacts<'_> {
    /// The sender to retry with when the server refuses the probe sender: RFC 5321 requires
    /// every domain's postmaster to exist, so sender verification accepts it.
    pub fn fallback_sender(&self) -> String {
        match self.names.local.first() {
            Some(name) => format!("<postmaster@{name}>"),
            None => "<>".to_string(),
        }
    }
}

/// One test a probe plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    /// The test's id in results (the relay vector id, or the probe's id).
    pub id: String,
    /// What it sends.
    pub step: SmtpStep,
    /// Whether its acceptance alone decides the probe's verdict (a plainly external recipient
    /// accepted is an open relay, whatever else the host does): the probe's tests not yet sent
    /// are then skipped, unless the audit runs every test (`--all-vectors`).
    pub decisive: bool,
}

/// A finished test with the transcript lines that show it.
#[derive(Debug, Clone)]
pub struct TestRecord {
    /// The result, tagged with the session that carried it.
    pub result: TestResult,
    /// The transcript lines of the test.
    pub lines: Vec<TranscriptLine>,
}

/// Everything findings are drawn from.
#[derive(Debug, Clone, Copy)]
pub struct Audited<'a> {
    /// The host's address.
    pub ip: IpAddr,
    /// The third-party domain used in relay vectors.
    pub external_domain: &'a str,
    /// The audited port.
    pub port: u16,
    /// The rules (for severities).
    pub rules: &'a RuleSet,
    /// How the first session's opening went.
    pub opening: OpeningSeen<'a>,
    /// Every test, in plan order.
    pub tests: &'a [TestRecord],
    /// The notes of sessions the server desynchronised (data sent when no reply was due), each
    /// with the lines before it; empty when every session stayed in turn.
    pub desyncs: &'a [TranscriptLine],
}

/// How the opening of the first session went.
#[derive(Debug, Clone, Copy)]
pub enum OpeningSeen<'a> {
    /// The session opened.
    Opened {
        /// What the opening showed.
        smtp: &'a SmtpInfo,
        /// Bytes the server sent after its 220 to STARTTLS, if it did.
        starttls_injection: Option<&'a str>,
        /// The first session's opening lines (greeting, EHLO, TLS).
        lines: &'a [TranscriptLine],
    },
    /// No session could be opened; no test ran.
    Failed {
        /// Why.
        reason: &'a OpenFailure,
        /// The first lines of the failed attempt.
        lines: &'a [TranscriptLine],
    },
}

impl<'a> OpeningSeen<'a> {
    /// What an opened session showed, with its opening lines.
    pub fn opened(&self) -> Option<(&'a SmtpInfo, &'a [TranscriptLine])> {
        match *self {
            OpeningSeen::Opened { smtp, lines, .. } => Some((smtp, lines)),
            OpeningSeen::Failed { .. } => None,
        }
    }
}

/// A finding with the severity the rules give its kind.
pub fn finding(
    rules: &RuleSet,
    kind: FindingKind,
    summary: String,
    tests: Vec<String>,
    transcript: Vec<TranscriptLine>,
) -> Finding {
    Finding {
        kind,
        severity: rules.severity(kind),
        summary,
        evidence: Evidence {
            tests,
            transcript,
            relay_strength: None,
        },
    }
}

/// The accepted tests of one kind, with the evidence they give.
pub struct Accepted<'a> {
    /// The accepted tests, in plan order.
    pub hits: Vec<&'a TestRecord>,
    /// Their ids, each once.
    pub ids: Vec<String>,
    /// Their transcript lines.
    pub lines: Vec<TranscriptLine>,
}

/// The tests of `kind` that were accepted.
pub fn accepted<'a>(tests: &'a [TestRecord], kind: &TestKind) -> Accepted<'a> {
    let hits: Vec<&TestRecord> = tests
        .iter()
        .filter(|t| t.result.kind == *kind && t.result.verdict == Verdict::Accepted)
        .collect();
    let mut ids: Vec<String> = Vec::new();
    for t in &hits {
        if !ids.contains(&t.result.id) {
            ids.push(t.result.id.clone());
        }
    }
    let lines = hits.iter().flat_map(|t| t.lines.iter().cloned()).collect();
    Accepted { hits, ids, lines }
}

/// A local part no real mailbox has: `rg-` and 12 random lower-case letters and digits.
pub fn random_local_part() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("rg-{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_ids_are_distinct() {
        let mut ids: Vec<&str> = PROBES.iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PROBES.len());
    }
}
