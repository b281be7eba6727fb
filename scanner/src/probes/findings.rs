//! Drawing findings from what the sessions showed.

use relayguard_core::rules::RuleSet;
use relayguard_core::scan::{SmtpInfo, TestKind, Verdict};
use relayguard_core::{Evidence, Finding, FindingKind, TranscriptLine};

use crate::audit::Done;

/// What the findings are drawn from.
pub(crate) struct FindingInput<'a> {
    pub port: u16,
    pub smtp: &'a SmtpInfo,
    pub starttls_injection: Option<&'a str>,
    /// The first session's opening lines (greeting, EHLO, TLS).
    pub opening: &'a [TranscriptLine],
    pub tests: &'a [Done],
    pub rules: &'a RuleSet,
}

fn finding(
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
        evidence: Evidence { tests, transcript },
    }
}

/// Evidence from accepted tests of one kind: their ids (distinct) and their transcript lines.
fn accepted(tests: &[Done], kind: TestKind) -> (Vec<&Done>, Vec<String>, Vec<TranscriptLine>) {
    let hits: Vec<&Done> = tests
        .iter()
        .filter(|d| d.result.kind == kind && d.result.verdict == Verdict::Accepted)
        .collect();
    let mut ids: Vec<String> = Vec::new();
    for d in &hits {
        if !ids.contains(&d.result.id) {
            ids.push(d.result.id.clone());
        }
    }
    let lines = hits.iter().flat_map(|d| d.lines.iter().cloned()).collect();
    (hits, ids, lines)
}

/// The findings for an audited port.
pub(crate) fn build(input: &FindingInput<'_>) -> Vec<Finding> {
    let rules = input.rules;
    let smtp = input.smtp;
    let opening = || input.opening.to_vec();
    let mut out = Vec::new();

    let (hits, ids, lines) = accepted(input.tests, TestKind::Relay);
    if !hits.is_empty() {
        let total = input
            .tests
            .iter()
            .filter(|d| d.result.kind == TestKind::Relay)
            .count();
        out.push(finding(
            rules,
            FindingKind::OpenRelay,
            format!(
                "accepted {} of {} relay tests without authentication ({})",
                hits.len(),
                total,
                ids.join(", ")
            ),
            ids,
            lines,
        ));
    }

    let (hits, ids, lines) = accepted(input.tests, TestKind::Backscatter);
    if !hits.is_empty() {
        let addresses: Vec<&str> = hits.iter().map(|d| d.result.argument.as_str()).collect();
        out.push(finding(
            rules,
            FindingKind::BackscatterSource,
            format!(
                "accepts mail for unknown local users at RCPT ({}); it will bounce spam to forged senders",
                addresses.join(", ")
            ),
            ids,
            lines,
        ));
    }

    let (hits, ids, lines) = accepted(input.tests, TestKind::Vrfy);
    if let Some(d) = hits.first() {
        out.push(finding(
            rules,
            FindingKind::VrfyEnabled,
            format!(
                "VRFY tells existing users from unknown ones ({})",
                d.result.reply
            ),
            ids,
            lines,
        ));
    }
    let (hits, ids, lines) = accepted(input.tests, TestKind::Expn);
    if let Some(d) = hits.first() {
        out.push(finding(
            rules,
            FindingKind::ExpnEnabled,
            format!("EXPN expands {} ({})", d.result.argument, d.result.reply),
            ids,
            lines,
        ));
    }

    let plain_auth: Vec<&String> = smtp
        .auth_before_tls
        .iter()
        .filter(|m| *m == "PLAIN" || *m == "LOGIN")
        .collect();
    if !plain_auth.is_empty() {
        let mechs: Vec<&str> = plain_auth.iter().map(|s| s.as_str()).collect();
        out.push(finding(
            rules,
            FindingKind::AuthBeforeTls,
            format!(
                "offers AUTH {} before TLS: passwords can cross the network in clear text",
                mechs.join(" ")
            ),
            Vec::new(),
            opening(),
        ));
    }

    if input.port != 465 && !smtp.starttls {
        out.push(finding(
            rules,
            FindingKind::NoStarttls,
            format!("port {} does not offer STARTTLS", input.port),
            Vec::new(),
            opening(),
        ));
    }

    if let Some(tls) = &smtp.tls {
        if tls.established && !tls.certificate_valid {
            let subject = tls.chain.first().map_or("", |c| c.subject.as_str());
            out.push(finding(
                rules,
                FindingKind::TlsCertificateInvalid,
                format!(
                    "certificate {subject:?} does not validate for {}: {}",
                    tls.checked_name,
                    tls.error.as_deref().unwrap_or("unknown reason")
                ),
                Vec::new(),
                opening(),
            ));
        } else if !tls.established {
            out.push(finding(
                rules,
                FindingKind::TlsHandshakeFailed,
                format!(
                    "TLS could not be established: {}",
                    tls.error.as_deref().unwrap_or("unknown reason")
                ),
                Vec::new(),
                opening(),
            ));
        }
    }

    if let Some(bytes) = input.starttls_injection {
        out.push(finding(
            rules,
            FindingKind::StarttlsInjection,
            format!("sent plaintext after its 220 reply to STARTTLS: {bytes:?}"),
            Vec::new(),
            opening(),
        ));
    }
    out
}

/// The finding for a listener that does not speak SMTP.
pub(crate) fn not_smtp(what: &str, transcript: Vec<TranscriptLine>, rules: &RuleSet) -> Finding {
    finding(
        rules,
        FindingKind::NotSmtp,
        format!("the service on this port does not speak SMTP ({what})"),
        Vec::new(),
        transcript,
    )
}
