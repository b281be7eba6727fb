//! `--confirm`: proof by delivery. For each host with an accepted or suspected relay vector,
//! one message per distinct vector form (at most `--confirm-max`) goes through the host to a
//! canary address that routes to the auditor's own sink ([`sink::Sink`]); a message whose
//! token arrives within `--confirm-wait` makes the host an `open-relay` confirmed by delivery,
//! with the `Received:` headers (the relay path) as evidence. A host that took the message but
//! never delivered it is `relay-suspected` (an `open-relay` read from RCPT alone included), with
//! the note "accepted, not delivered within N s": a developer mail catcher or a catch-all that
//! delivers locally answers 250 to anything and is not an open relay.
//!
//! This is the only place relayguard sends DATA, and it runs only when asked for.

pub mod sink;

use std::net::SocketAddr;
use std::time::Duration;

use relayguard_core::scan::{HostResult, TestResult, Verdict};
use relayguard_core::{
    Direction, Evidence, Finding, FindingKind, RelayStrength, Transcript, TranscriptLine,
};
use tokio::time::Instant;

use crate::audit::AuditConfig;
use crate::pacing::Pacer;
use crate::probes::names::{address_literal, is_plain_external};
use crate::probes::random_local_part;
use crate::probes::relay::SUSPECTED;
use crate::smtp::session;
use crate::smtp::{Connection, SessionTarget, Timing, TlsMode};
use sink::Sink;

/// What `--confirm` was given.
#[derive(Debug, Clone)]
pub struct ConfirmConfig {
    /// Most messages sent through one host.
    pub max_per_host: usize,
    /// How long to wait for the last message sent to arrive.
    pub wait: Duration,
    /// The domain of the canary address (its MX must point at the sink); `None` for the sink's
    /// address literal.
    pub domain: Option<String>,
}

/// One message sent through a host.
struct Sent {
    host: usize,
    test: TestResult,
    token: String,
    sent_at: Instant,
    /// Whether the host took the message (250 after the final dot).
    accepted: bool,
    lines: Vec<TranscriptLine>,
}

/// Sends the confirmation messages for every host that needs them, waits for them at `sink`,
/// and revises those hosts' findings. Hosts without an accepted or suspected vector get no
/// connection at all.
pub async fn confirm(
    hosts: &mut [HostResult],
    sink: &Sink,
    audit: &AuditConfig,
    pacer: &Pacer,
    confirm: &ConfirmConfig,
) {
    let canary_domain = confirm.domain.clone().unwrap_or_else(|| {
        let ip = sink.addr().ip();
        format!("[{}]", address_literal(ip))
    });
    let mut sent: Vec<Sent> = Vec::new();
    for (i, host) in hosts.iter_mut().enumerate() {
        for test in forms_to_confirm(host, audit, confirm.max_per_host) {
            let token = format!("rg-confirm-{}", &random_local_part()[3..]);
            let rcpt = test
                .argument
                .replace(&audit.probe_recipient, &token)
                .replace(&audit.external_domain, &canary_domain);
            let mail_from = test
                .mail_from
                .clone()
                .unwrap_or_else(|| "<>".into())
                .replace(&audit.external_domain, &canary_domain);
            let body = body(audit, host, &test.id, &token, &rcpt, &mail_from);
            let (accepted, lines) = send(audit, pacer, host, &mail_from, &rcpt, &body).await;
            sent.push(Sent {
                host: i,
                test,
                token,
                sent_at: Instant::now(),
                accepted,
                lines,
            });
        }
    }
    if sent.is_empty() {
        return;
    }
    // Wait for every accepted message, at most `wait` after the last one was sent.
    let until = sent
        .iter()
        .map(|s| s.sent_at)
        .max()
        .unwrap_or_else(Instant::now)
        + confirm.wait;
    while Instant::now() < until
        && sent
            .iter()
            .any(|s| s.accepted && sink.find(&s.token).is_none())
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, host) in hosts.iter_mut().enumerate() {
        let mine: Vec<&Sent> = sent.iter().filter(|s| s.host == i).collect();
        if !mine.is_empty() {
            revise(host, &mine, sink, audit, confirm.wait);
        }
    }
}

/// The relay tests to confirm on a host, one per vector id: a plainly external recipient alone
/// when one was accepted (one message proves it), else up to `max` accepted or suspected forms.
fn forms_to_confirm(host: &HostResult, audit: &AuditConfig, max: usize) -> Vec<TestResult> {
    let relay: Vec<&TestResult> = host
        .tests
        .iter()
        .filter(|t| t.kind.as_str() == "relay")
        .filter(|t| {
            t.verdict == Verdict::Accepted
                || t.note.as_deref().is_some_and(|n| n.starts_with(SUSPECTED))
        })
        .collect();
    if let Some(plain) = relay.iter().find(|t| {
        t.verdict == Verdict::Accepted && is_plain_external(&t.argument, &audit.external_domain)
    }) {
        return vec![(*plain).clone()];
    }
    let mut out: Vec<TestResult> = Vec::new();
    for t in relay {
        if out.len() < max && !out.iter().any(|o| o.id == t.id) {
            out.push(t.clone());
        }
    }
    out
}

/// The message: who audits, why, and how to opt out.
fn body(
    audit: &AuditConfig,
    host: &HostResult,
    vector: &str,
    token: &str,
    rcpt: &str,
    mail_from: &str,
) -> Vec<String> {
    let from = mail_from.trim_start_matches('<').trim_end_matches('>');
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let source = host
        .source
        .map(|s| s.to_string())
        .unwrap_or_else(|| "an unrecorded address".into());
    let target = SocketAddr::new(host.address, host.port);
    vec![
        format!("From: relayguard relay audit <{}>", if from.is_empty() { "postmaster@relayguard.invalid" } else { from }),
        format!("To: {rcpt}"),
        format!("Subject: relayguard relay confirmation {token}"),
        format!("Date: {date}"),
        format!("Message-ID: <{token}@relayguard.invalid>"),
        format!("X-Relayguard-Token: {token}"),
        String::new(),
        format!(
            "This message was sent by relayguard, a mail relay audit run by the operator of {} from {source},",
            audit.session.ehlo_name
        ),
        format!("to check whether the mail server {target} relays mail for anyone (relay vector {vector})."),
        "It is addressed to the auditor's own receiving sink and carries nothing else.".into(),
        "If it reached any other mailbox, the server above is an open relay: please tell its administrator.".into(),
        format!(
            "To opt out of these audits, ask the operator of {} to exclude {target} from its sweeps.",
            audit.session.ehlo_name
        ),
        format!("Token: {token}"),
    ]
}

/// Sends one message through the host: MAIL, RCPT, DATA, the body, the final dot. Returns
/// whether the host took it and the lines of the session.
async fn send(
    audit: &AuditConfig,
    pacer: &Pacer,
    host: &HostResult,
    mail_from: &str,
    rcpt: &str,
    body: &[String],
) -> (bool, Vec<TranscriptLine>) {
    let started = Instant::now();
    let timing = Timing {
        started,
        command_timeout: audit.command_timeout,
        deadline: started + audit.host_deadline,
    };
    let number = host
        .transcript
        .lines
        .iter()
        .map(|l| l.session)
        .max()
        .unwrap_or(0)
        + 1;
    let mode = match &host.smtp {
        _ if host.port == 465 => TlsMode::Implicit,
        Some(s) if s.tls.as_ref().is_some_and(|t| !t.established) => TlsMode::Plain,
        _ => TlsMode::StartTls,
    };
    let target = SessionTarget {
        addr: SocketAddr::new(host.address, host.port),
        known_name: host.target_name.as_deref(),
        mode,
        session: number,
        timing,
    };
    let (mut conn, _) = match session::open(&audit.session, pacer, &target).await {
        Ok(opened) => opened,
        Err(failed) => return (false, failed.transcript.lines),
    };
    let accepted = deliver(&mut conn, mail_from, rcpt, body).await;
    let transcript: Transcript = conn.quit().await;
    (accepted, transcript.lines)
}

async fn deliver(conn: &mut Connection, mail_from: &str, rcpt: &str, body: &[String]) -> bool {
    let ok = |r: &crate::smtp::Reply, code: u16| r.code == code || (code == 250 && r.code == 251);
    match conn.command(&format!("MAIL FROM:{mail_from}")).await {
        Ok(r) if ok(&r, 250) => {}
        _ => return false,
    }
    match conn.command(&format!("RCPT TO:{rcpt}")).await {
        Ok(r) if ok(&r, 250) => {}
        _ => return false,
    }
    match conn.command("DATA").await {
        Ok(r) if r.code == 354 => {}
        _ => return false,
    }
    for line in body {
        // Dot-stuffing: no line of the body may end the data early.
        let line = if line.starts_with('.') {
            format!(".{line}")
        } else {
            line.clone()
        };
        if conn.send(&line).await.is_err() {
            return false;
        }
    }
    matches!(conn.command(".").await, Ok(r) if r.code == 250)
}

/// Turns what arrived into verdicts for one host.
fn revise(host: &mut HostResult, sent: &[&Sent], sink: &Sink, audit: &AuditConfig, wait: Duration) {
    for s in sent {
        host.transcript.lines.extend(s.lines.iter().cloned());
    }
    let delivered: Vec<(&Sent, sink::Received)> = sent
        .iter()
        .filter_map(|s| sink.find(&s.token).map(|m| (*s, m)))
        .collect();
    if delivered.is_empty() {
        let took = sent.iter().filter(|s| s.accepted).count();
        let note = if took > 0 {
            format!(
                "--confirm: accepted, not delivered within {} s ({took} of {} messages taken by the host)",
                wait.as_secs(),
                sent.len()
            )
        } else {
            format!(
                "--confirm: the host took none of the {} confirmation messages",
                sent.len()
            )
        };
        for f in &mut host.findings {
            if matches!(f.kind, FindingKind::RelaySuspected | FindingKind::OpenRelay) {
                f.summary = format!("{}; {note}", f.summary);
            }
            // Asked for proof, the host took the message and it never arrived: a mail catcher
            // or a catch-all that delivers locally answers 250 to anything. Suspected, not open.
            if f.kind == FindingKind::OpenRelay && took > 0 {
                f.kind = FindingKind::RelaySuspected;
                f.severity = audit.rules.severity(FindingKind::RelaySuspected);
                f.evidence.relay_strength = None;
                f.summary = f.summary.replacen("accepted", "accepted at RCPT", 1);
            }
        }
        host.notes.push(note);
        return;
    }
    let mut ids: Vec<String> = Vec::new();
    let mut evidence: Vec<TranscriptLine> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    for (s, m) in &delivered {
        if !ids.contains(&s.test.id) {
            ids.push(s.test.id.clone());
        }
        let secs = m.at.saturating_duration_since(s.sent_at).as_secs_f64();
        parts.push(format!("{} arrived after {secs:.1} s", s.test.id));
        evidence.extend(s.lines.iter().cloned());
        let session = s.lines.first().map(|l| l.session).unwrap_or(0);
        for header in m.received_headers() {
            evidence.push(TranscriptLine {
                session,
                ms: s.lines.last().map(|l| l.ms).unwrap_or(0),
                dir: Direction::Note,
                text: format!("sink: {header}"),
            });
        }
    }
    host.findings
        .retain(|f| f.kind != FindingKind::RelaySuspected);
    let summary = format!(
        "relays mail for anyone, confirmed by delivery to the auditor's sink ({})",
        parts.join(", ")
    );
    match host
        .findings
        .iter_mut()
        .find(|f| f.kind == FindingKind::OpenRelay)
    {
        Some(f) => {
            f.summary = format!("{}; {summary}", f.summary);
            f.evidence.relay_strength = Some(RelayStrength::Delivered);
            f.evidence.transcript.extend(evidence);
            for id in ids {
                if !f.evidence.tests.contains(&id) {
                    f.evidence.tests.push(id);
                }
            }
        }
        None => {
            host.findings.push(Finding {
                kind: FindingKind::OpenRelay,
                severity: audit.rules.severity(FindingKind::OpenRelay),
                summary,
                evidence: Evidence {
                    relay_strength: Some(RelayStrength::Delivered),
                    tests: ids,
                    transcript: evidence,
                },
            });
            host.findings.sort_by_key(|f| f.kind);
        }
    }
}
