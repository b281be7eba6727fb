//! The digest as text and as HTML (built with maud, which escapes every interpolated string:
//! summaries and evidence quote what remote servers said).

use std::fmt::Write as _;

use maud::{DOCTYPE, html};
use relayguard_core::{FindingKind, escape_controls};

use super::Lang;
use super::evidence::evidence_lines;
use super::labels::{Labels, change_label, labels, queue_seen, subject};
use super::remediation::Remediation;
use super::routing::{Digest, HostSection, Via};
use crate::model::Role;
use crate::store::{FindingSource, FindingStatus};

/// Whether the host should not run an MTA at all, judging by its registration and findings.
fn no_mta_wanted(section: &HostSection) -> bool {
    let role_non_mail = section
        .host
        .as_ref()
        .is_some_and(|h| h.role == Role::NonMail);
    role_non_mail
        || section.items.iter().any(|i| {
            i.finding.status == FindingStatus::Open
                && [
                    FindingKind::UnregisteredMta.id(),
                    FindingKind::NonMailHostListening.id(),
                    FindingKind::MtaEnabledOnNonMailHost.id(),
                ]
                .contains(&i.finding.kind.as_str())
        })
}

/// Whether the MTA's own configuration needs a fix (relay, backscatter, VRFY/EXPN, AUTH…).
fn mta_fix_wanted(section: &HostSection) -> bool {
    section.items.iter().any(|i| {
        i.finding.status == FindingStatus::Open
            && i.finding.source == FindingSource::Sweep
            && i.finding.port != 0
            && ![
                FindingKind::UnregisteredMta.id(),
                FindingKind::NonMailHostListening.id(),
            ]
            .contains(&i.finding.kind.as_str())
    })
}

/// The queue health an open `mail-queue-backlog` or `bounce-burst` was opened on.
fn queue_of(f: &crate::store::FindingRow) -> Option<relayguard_core::agent_report::QueueHealth> {
    let queue_kind = [
        FindingKind::MailQueueBacklog.id(),
        FindingKind::BounceBurst.id(),
    ]
    .contains(&f.kind.as_str());
    if !queue_kind || f.status != FindingStatus::Open {
        return None;
    }
    serde_json::from_value(f.evidence.get("queue")?.clone()).ok()
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The name to greet: the contact's name on one line, else the address.
fn greeting_name(d: &Digest) -> String {
    let name = crate::notify::mail::one_line(&d.contact.name);
    if name.is_empty() {
        d.contact.email.clone()
    } else {
        name
    }
}

/// Why the reader receives this digest.
fn intro(d: &Digest, l: &Labels) -> String {
    match &d.contact.via {
        Via::Registered => l.intro_registered.to_string(),
        Via::NetworkOwner(cidr) => l.intro_owner.replace("{cidr}", cidr),
        Via::Fallback => l.intro_fallback.to_string(),
    }
}

/// The heading of a host's section: its address, with name and role when registered.
fn host_title(s: &HostSection) -> String {
    match &s.host {
        Some(h) => format!("{} ({}, {})", s.address, h.hostname, h.role),
        None => s.address.clone(),
    }
}

/// The remedies for a host: (heading, fix name, text).
fn remedies<'a>(
    s: &HostSection,
    rem: &'a Remediation,
    lang: Lang,
) -> Vec<(&'static str, &'a str, &'a str)> {
    let l = labels(lang);
    let mut out = Vec::new();
    if mta_fix_wanted(s) {
        let r = rem.for_mta(s.mta.as_deref().unwrap_or("other"));
        out.push((l.fix, r.name.as_str(), r.text(lang)));
    }
    if no_mta_wanted(s) {
        let r = rem.no_mta_wanted();
        out.push((l.stop, r.name.as_str(), r.text(lang)));
    }
    if let Some(q) = s.items.iter().find_map(|i| queue_of(&i.finding)) {
        let (name, text) = super::remediation::queue_health(q.mta.as_str(), lang);
        out.push((l.queue_fix, name, text));
    }
    out
}

/// The plain-text part.
pub fn render_text(d: &Digest, lang: Lang, rem: &Remediation) -> String {
    let l = labels(lang);
    let mut t = String::new();
    let name = greeting_name(d);
    let _ = writeln!(
        t,
        "{}\n\n{}\n",
        l.greeting.replace("{name}", &name),
        intro(d, l)
    );
    let _ = writeln!(t, "{}", l.summary);
    let mut rows = vec![l.cols.map(String::from).to_vec()];
    for s in &d.hosts {
        for i in &s.items {
            rows.push(vec![
                s.address.clone(),
                i.finding.port.to_string(),
                i.finding.severity.to_string(),
                change_label(&i.change, lang),
                i.finding.kind.clone(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| display_width(&r[c])).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c < 4 {
                line.push_str(&" ".repeat(widths[c] - display_width(cell) + 2));
            }
        }
        let _ = writeln!(t, "{}", line.trim_end());
    }
    for s in &d.hosts {
        let _ = writeln!(t, "\n=== {} ===", host_title(s));
        let _ = writeln!(
            t,
            "{}: {}",
            l.mta,
            s.mta
                .as_deref()
                .map(escape_controls)
                .unwrap_or_else(|| l.unknown.into())
        );
        for i in &s.items {
            let f = &i.finding;
            let _ = writeln!(
                t,
                "\n  [{}] {} (port {}) - {}",
                f.severity,
                f.kind,
                f.port,
                change_label(&i.change, lang)
            );
            let _ = writeln!(t, "    {}", escape_controls(&f.summary));
            if let Some(q) = queue_of(f) {
                let _ = writeln!(t, "    {}", escape_controls(&queue_seen(&q, lang)));
            }
            let _ = write!(t, "    {}: {}", l.first_seen, date(f.first_seen));
            if let Some(r) = f
                .resolved_at
                .filter(|_| f.status == FindingStatus::Resolved)
            {
                let _ = write!(t, "; {}: {}", l.resolved_at, date(r));
            }
            let _ = writeln!(t);
            if f.status == FindingStatus::Open {
                let ev = evidence_lines(f);
                if !ev.is_empty() {
                    let _ = writeln!(t, "    {}:", l.evidence);
                    for line in ev {
                        let _ = writeln!(t, "      {line}");
                    }
                }
            }
        }
        for (heading, name, text) in remedies(s, rem, lang) {
            let _ = writeln!(t, "\n  {heading} ({name}):");
            for line in text.lines() {
                let _ = writeln!(t, "    {line}");
            }
        }
    }
    let _ = writeln!(t, "\n-- \n{}", l.footer);
    t
}

/// The HTML part; maud escapes every piece of registry or scan data.
pub fn render_html(d: &Digest, lang: Lang, rem: &Remediation) -> String {
    let l = labels(lang);
    let lang_tag = match lang {
        Lang::En => "en",
        Lang::Ja => "ja",
    };
    let name = greeting_name(d);
    let page = html! {
        (DOCTYPE)
        html lang=(lang_tag) {
            head { meta charset="utf-8"; title { (subject(d, lang)) } }
            body style="font-family: sans-serif" {
                p { (l.greeting.replace("{name}", &name)) }
                p { (intro(d, l)) }
                h2 { (l.summary) }
                table border="1" cellpadding="4" style="border-collapse: collapse" {
                    tr { @for c in l.cols { th { (c) } } }
                    @for s in &d.hosts {
                        @for i in &s.items {
                            tr {
                                td { (s.address) }
                                td { (i.finding.port) }
                                td { (i.finding.severity.as_str()) }
                                td { (change_label(&i.change, lang)) }
                                td { (i.finding.kind) }
                            }
                        }
                    }
                }
                @for s in &d.hosts {
                    h2 { (host_title(s)) }
                    p { (l.mta) ": " b { (s.mta.as_deref().unwrap_or(l.unknown)) } }
                    @for i in &s.items {
                        @let f = &i.finding;
                        h3 {
                            "[" (f.severity.as_str()) "] " (f.kind) " (port " (f.port) ") — "
                            (change_label(&i.change, lang))
                        }
                        p { (f.summary) }
                        @if let Some(q) = queue_of(f) { p { (queue_seen(&q, lang)) } }
                        p {
                            (l.first_seen) ": " (date(f.first_seen))
                            @if let Some(r) = f.resolved_at.filter(|_| f.status == FindingStatus::Resolved) {
                                "; " (l.resolved_at) ": " (date(r))
                            }
                        }
                        @if f.status == FindingStatus::Open {
                            @let ev = evidence_lines(f);
                            @if !ev.is_empty() {
                                p { (l.evidence) ":" }
                                pre { (ev.join("\n")) }
                            }
                        }
                    }
                    @for (heading, name, text) in remedies(s, rem, lang) {
                        h3 { (heading) " (" (name) ")" }
                        pre { (text) }
                    }
                }
                hr;
                p { small { (l.footer) } }
            }
        }
    };
    page.into_string()
}

/// Columns a string takes in a fixed-width font (CJK characters take two).
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::routing::{Change, Contact, Item};
    use crate::store::FindingRow;
    use relayguard_core::Severity;

    #[test]
    fn html_is_escaped() {
        let hostile = "<a href=\"x\">&'";
        let digest = Digest {
            contact: Contact {
                email: "admin@campus.test".into(),
                name: hostile.into(),
                via: Via::Registered,
                lang: None,
            },
            hosts: vec![HostSection {
                address: "192.0.2.1".into(),
                host: None,
                mta: Some(hostile.into()),
                items: vec![Item {
                    finding: FindingRow {
                        overridden: None,
                        id: 1,
                        address: "192.0.2.1".into(),
                        port: 25,
                        kind: "open-relay".into(),
                        source: FindingSource::Sweep,
                        severity: Severity::Critical,
                        summary: hostile.into(),
                        evidence: serde_json::json!({ "banner": hostile }),
                        status: FindingStatus::Open,
                        first_seen: 0,
                        last_seen: 0,
                        resolved_at: None,
                        last_sweep: None,
                        tested_from: None,
                        vantages: vec![],
                        admin_email: None,
                    },
                    change: Change::New,
                }],
            }],
        };
        let html = render_html(&digest, Lang::En, &Remediation::embedded().unwrap());
        assert!(!html.contains("<a href"), "{html}");
        assert!(html.contains("&lt;a href=&quot;x&quot;&gt;&amp;"), "{html}");
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{html}"
        );
    }

    fn row(kind: &str, severity: Severity, summary: &str, evidence: serde_json::Value) -> Item {
        Item {
            finding: FindingRow {
                overridden: None,
                id: 1,
                address: "192.0.2.1".into(),
                port: 25,
                kind: kind.into(),
                source: FindingSource::Sweep,
                severity,
                summary: summary.into(),
                evidence,
                status: FindingStatus::Open,
                first_seen: 0,
                last_seen: 0,
                resolved_at: None,
                last_sweep: None,
                tested_from: Some("198.19.0.1".into()),
                vantages: vec![],
                admin_email: None,
            },
            change: Change::New,
        }
    }

    fn digest(items: Vec<Item>) -> Digest {
        Digest {
            contact: Contact {
                lang: None,
                email: "admin@campus.test".into(),
                name: "Admin".into(),
                via: Via::Registered,
            },
            hosts: vec![HostSection {
                address: "192.0.2.1".into(),
                host: None,
                mta: Some("postfix".into()),
                items,
            }],
        }
    }

    #[test]
    fn a_suspected_relay_is_never_mailed_as_an_open_relay() {
        let rcpt = serde_json::json!({
            "tests": ["percent-hack-host"],
            "transcript": [
                { "session": 2, "ms": 1, "dir": "client", "text": "RCPT TO:<v%ext.example@campus.test>" },
                { "session": 2, "ms": 2, "dir": "server", "text": "250 2.1.5 Ok" }
            ]
        });
        let d = digest(vec![row(
            "relay-suspected",
            Severity::Medium,
            "accepted 1 routed or local-form relay vectors (percent-hack-host: <v%ext.example@campus.test>) but also accepts unknown users at those domains, so the 250 cannot tell relaying from local delivery (unconfirmed)",
            rcpt,
        )]);
        let rem = Remediation::embedded().unwrap();
        for lang in [Lang::En, Lang::Ja] {
            let text = render_text(&d, lang, &rem).to_ascii_lowercase();
            let html = render_html(&d, lang, &rem).to_ascii_lowercase();
            for body in [&text, &html] {
                assert!(!body.contains("open relay"), "{body}");
                assert!(!body.contains("open-relay"), "{body}");
                assert!(body.contains("relay-suspected"), "{body}");
                assert!(body.contains("tested from: 198.19.0.1"), "{body}");
                assert!(
                    !body.contains("verdict:"),
                    "no strength on a suspicion: {body}"
                );
            }
        }
    }

    #[test]
    fn an_open_relay_says_what_its_verdict_rests_on() {
        let ev = serde_json::json!({
            "relay_strength": "routed-form",
            "tests": ["percent-hack-host"],
            "transcript": [
                { "session": 2, "ms": 1, "dir": "client", "text": "RCPT TO:<v%ext.example@campus.test>" },
                { "session": 2, "ms": 2, "dir": "server", "text": "250 2.1.5 Ok" }
            ]
        });
        let d = digest(vec![row("open-relay", Severity::Critical, "accepted", ev)]);
        let text = render_text(&d, Lang::En, &Remediation::embedded().unwrap());
        assert!(
            text.contains("verdict: accepted at RCPT for routed forms only"),
            "{text}"
        );
    }
}
