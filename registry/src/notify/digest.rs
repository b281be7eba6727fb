//! Grouping findings into one digest per responsible address, deciding what is news, and the
//! digest's text and HTML (in English or Japanese).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use relayguard_core::FindingKind;

use super::Lang;
use super::remediation::Remediation;
use super::sent::LastNotice;
use crate::model::{Host, Network, Role};
use crate::store::{FindingRow, FindingSource, FindingStatus, most_specific};

/// Why an address receives a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// It is the registered administrator of the host.
    Registered,
    /// It owns the network block (CIDR) containing the host, which has no usable registration.
    NetworkOwner(String),
    /// Nobody else answers for the host: the security team's fallback address.
    Fallback,
}

/// Who a digest goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// E-mail address (validated before use).
    pub email: String,
    /// Display name (may be anything: reduced to one line before it goes into a header).
    pub name: String,
    /// Why this address.
    pub via: Via,
}

/// What is new about a finding since the last notice to the same address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Never reported before.
    New,
    /// Reported as resolved, open again.
    Reopened,
    /// Still open, severity changed since the last notice.
    SeverityChanged {
        /// The severity reported last time.
        from: String,
    },
    /// Still open and last reported longer ago than the reminder interval.
    Reminder,
    /// Still open, reported recently: included for completeness, not news by itself.
    StillOpen,
    /// Reported as open, now resolved.
    Resolved,
}

impl Change {
    /// Whether this alone warrants a message.
    pub fn is_news(&self) -> bool {
        !matches!(self, Change::StillOpen)
    }
}

/// One finding in a digest.
#[derive(Debug, Clone)]
pub struct Item {
    /// The finding as stored.
    pub finding: FindingRow,
    /// What changed.
    pub change: Change,
}

/// One host's part of a digest.
#[derive(Debug, Clone)]
pub struct HostSection {
    /// Address.
    pub address: String,
    /// The registration, when there is one.
    pub host: Option<Host>,
    /// MTA detected by the latest sweep (`smtp.mta`), when known.
    pub mta: Option<String>,
    /// Its findings, most severe first.
    pub items: Vec<Item>,
}

/// One message: everything one address should hear about.
#[derive(Debug, Clone)]
pub struct Digest {
    /// The recipient.
    pub contact: Contact,
    /// Hosts, in address order.
    pub hosts: Vec<HostSection>,
}

impl Digest {
    /// All items.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.hosts.iter().flat_map(|h| h.items.iter())
    }

    /// (new or changed, resolved, still open) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for i in self.items() {
            match i.change {
                Change::New | Change::Reopened | Change::SeverityChanged { .. } => c.0 += 1,
                Change::Resolved => c.1 += 1,
                Change::Reminder | Change::StillOpen => {}
            }
            if i.finding.status == FindingStatus::Open {
                c.2 += 1;
            }
        }
        c
    }
}

/// The responsible contact for `address`: its registered admin, else the owner of the most
/// specific network block containing it. Addresses that fail validation are skipped.
pub fn contact_for(address: &str, hosts: &[Host], nets: &[Network]) -> Option<Contact> {
    if let Some(h) = hosts.iter().find(|h| h.address == address) {
        if crate::model::parse_email(&h.admin_email).is_ok() {
            return Some(Contact {
                email: h.admin_email.trim().to_string(),
                name: h.admin_name.clone(),
                via: Via::Registered,
            });
        }
        tracing::warn!(
            address,
            "registered admin e-mail is invalid; trying the network owner"
        );
    }
    let ip = address.parse().ok()?;
    let net = most_specific(nets, ip)?;
    if crate::model::parse_email(&net.owner_email).is_err() {
        tracing::warn!(address, cidr = %net.cidr, "network owner e-mail is invalid");
        return None;
    }
    Some(Contact {
        email: net.owner_email.trim().to_string(),
        name: net.owner_name.clone(),
        via: Via::NetworkOwner(net.cidr.clone()),
    })
}

/// What `finding` means for `contact` given the last notice to them about it; `None` when it
/// does not belong in a digest at all (resolved and never reported open).
pub fn classify(
    finding: &FindingRow,
    last: Option<&LastNotice>,
    now: i64,
    reminder_secs: Option<i64>,
) -> Option<Change> {
    match (finding.status, last) {
        (FindingStatus::Open, None) => Some(Change::New),
        (FindingStatus::Open, Some(l)) if l.status == FindingStatus::Resolved => {
            Some(Change::Reopened)
        }
        (FindingStatus::Open, Some(l)) if l.severity != finding.severity.as_str() => {
            Some(Change::SeverityChanged {
                from: l.severity.clone(),
            })
        }
        (FindingStatus::Open, Some(l)) => Some(match reminder_secs {
            Some(s) if now - l.sent_at >= s => Change::Reminder,
            _ => Change::StillOpen,
        }),
        (FindingStatus::Resolved, Some(l)) if l.status == FindingStatus::Open => {
            Some(Change::Resolved)
        }
        (FindingStatus::Resolved, _) => None,
    }
}

/// Groups findings into digests, keeping only addresses with news. Errors when a finding
/// needs a contact, has none, and there is no fallback.
pub fn plan(
    findings: &[FindingRow],
    hosts: &[Host],
    nets: &[Network],
    last: &HashMap<(String, i64), LastNotice>,
    fallback: Option<&Contact>,
    now: i64,
    reminder_secs: Option<i64>,
) -> crate::error::Result<Vec<Digest>> {
    // Lower-case e-mail → (contact, address → items).
    let mut by_admin: BTreeMap<String, (Contact, BTreeMap<String, Vec<Item>>)> = BTreeMap::new();
    let mut orphans: Vec<String> = Vec::new();
    for f in findings {
        let contact = match contact_for(&f.address, hosts, nets).or_else(|| fallback.cloned()) {
            Some(c) => c,
            None => {
                // A resolved finding nobody was told about needs nobody.
                if f.status == FindingStatus::Open && !orphans.contains(&f.address) {
                    orphans.push(f.address.clone());
                }
                continue;
            }
        };
        let key = contact.email.to_ascii_lowercase();
        let Some(change) = classify(f, last.get(&(key.clone(), f.id)), now, reminder_secs) else {
            continue;
        };
        by_admin
            .entry(key)
            .or_insert_with(|| (contact, BTreeMap::new()))
            .1
            .entry(f.address.clone())
            .or_default()
            .push(Item {
                finding: f.clone(),
                change,
            });
    }
    if !orphans.is_empty() {
        return Err(crate::Error::Invalid(format!(
            "no contact for {} (no registered admin, no network block with an owner): give --fallback ADDR for the security team",
            orphans.join(", ")
        )));
    }
    let mut out = Vec::new();
    for (_, (contact, per_host)) in by_admin {
        if !per_host.values().flatten().any(|i| i.change.is_news()) {
            continue;
        }
        let mut sections: Vec<HostSection> = per_host
            .into_iter()
            .map(|(address, mut items)| {
                items.sort_by(|a, b| {
                    (b.finding.status == FindingStatus::Open)
                        .cmp(&(a.finding.status == FindingStatus::Open))
                        .then(b.finding.severity.cmp(&a.finding.severity))
                        .then(a.finding.port.cmp(&b.finding.port))
                        .then(a.finding.kind.cmp(&b.finding.kind))
                });
                HostSection {
                    host: hosts.iter().find(|h| h.address == address).cloned(),
                    address,
                    mta: None,
                    items,
                }
            })
            .collect();
        sections.sort_by_key(|s| {
            s.address
                .parse::<std::net::IpAddr>()
                .map(|a| (0, Some(a), String::new()))
                .unwrap_or((1, None, s.address.clone()))
        });
        out.push(Digest {
            contact,
            hosts: sections,
        });
    }
    Ok(out)
}

/// The lines of evidence worth showing: for relay and backscatter findings, the MAIL/RCPT
/// commands and the replies to them; otherwise the start of the transcript, or the JSON.
pub fn evidence_lines(f: &FindingRow) -> Vec<String> {
    const MAX_LINES: usize = 40;
    const MAX_CHARS: usize = 300;
    let clip = |s: &str| -> String {
        let s = escape_controls(s);
        if s.chars().count() > MAX_CHARS {
            s.chars().take(MAX_CHARS).collect::<String>() + "…"
        } else {
            s
        }
    };
    let mut out = Vec::new();
    let ev = &f.evidence;
    if let Some(tests) = ev.get("tests").and_then(|t| t.as_array())
        && !tests.is_empty()
    {
        let ids: Vec<&str> = tests.iter().filter_map(|t| t.as_str()).collect();
        out.push(clip(&format!("tests: {}", ids.join(", "))));
    }
    if let Some(lines) = ev.get("transcript").and_then(|t| t.as_array()) {
        let parsed: Vec<(String, String)> = lines
            .iter()
            .map(|l| {
                let dir = l.get("dir").and_then(|d| d.as_str()).unwrap_or("note");
                let text = l.get("text").and_then(|d| d.as_str()).unwrap_or("");
                (dir.to_string(), text.to_string())
            })
            .collect();
        let prefix = |dir: &str| match dir {
            "client" => "C: ",
            "server" => "S: ",
            _ => "-- ",
        };
        let is_env = |dir: &str, text: &str| {
            let t = text.trim_start().to_ascii_uppercase();
            dir == "client" && (t.starts_with("MAIL FROM") || t.starts_with("RCPT TO"))
        };
        let mut picked = Vec::new();
        if parsed.iter().any(|(d, t)| is_env(d, t)) {
            let mut keep_replies = false;
            for (d, t) in &parsed {
                if is_env(d, t) {
                    keep_replies = true;
                    picked.push(format!("{}{}", prefix(d), clip(t)));
                } else if d == "server" && keep_replies {
                    picked.push(format!("{}{}", prefix(d), clip(t)));
                } else if d == "client" {
                    keep_replies = false;
                }
            }
        } else {
            picked = parsed
                .iter()
                .map(|(d, t)| format!("{}{}", prefix(d), clip(t)))
                .collect();
        }
        let total = picked.len();
        out.extend(picked.into_iter().take(MAX_LINES));
        if total > MAX_LINES {
            out.push(format!("… ({} more lines)", total - MAX_LINES));
        }
    } else if let Some(obj) = ev.as_object() {
        // Registry- and agent-made evidence: one `key: value` line per field that says something.
        for (k, v) in obj {
            let v = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) if s.is_empty() => continue,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if out.len() >= MAX_LINES {
                break;
            }
            out.push(clip(&format!("{k}: {v}")));
        }
    }
    out
}

/// Escapes control characters (a banner with ANSI sequences or CR must not reach the reader raw).
fn escape_controls(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

struct Labels {
    greeting: &'static str,
    intro_registered: &'static str,
    intro_owner: &'static str,
    intro_fallback: &'static str,
    summary: &'static str,
    cols: [&'static str; 5],
    mta: &'static str,
    unknown: &'static str,
    evidence: &'static str,
    first_seen: &'static str,
    resolved_at: &'static str,
    fix: &'static str,
    stop: &'static str,
    footer: &'static str,
}

const EN: Labels = Labels {
    greeting: "Hello {name},",
    intro_registered: "relayguard, the campus mail-server audit, found the following on hosts registered with you as administrator.",
    intro_owner: "relayguard, the campus mail-server audit, found the following on hosts in network {cidr}, which you own. These hosts have no registered administrator: please forward this to whoever runs them.",
    intro_fallback: "relayguard found the following on hosts with no registered administrator and no network owner.",
    summary: "Summary",
    cols: ["ADDRESS", "PORT", "SEVERITY", "STATUS", "FINDING"],
    mta: "Detected mail server",
    unknown: "unknown",
    evidence: "Evidence",
    first_seen: "first seen",
    resolved_at: "resolved",
    fix: "How to fix it",
    stop: "This host should not run a mail server",
    footer: "This message was sent automatically by relayguard. You will hear again only about new, changed or resolved findings, and a reminder while findings stay open. Questions: reply to this message.",
};

const JA: Labels = Labels {
    greeting: "{name} 様",
    intro_registered: "学内メールサーバ検査 (relayguard) で、あなたが管理者として登録されているホストに次の問題が見つかりました。",
    intro_owner: "学内メールサーバ検査 (relayguard) で、あなたが管理するネットワーク {cidr} 内のホストに次の問題が見つかりました。これらのホストには管理者が登録されていません。実際の運用者に転送してください。",
    intro_fallback: "relayguard で、管理者もネットワーク管理者も登録されていないホストに次の問題が見つかりました。",
    summary: "概要",
    cols: ["アドレス", "ポート", "重大度", "状態", "問題"],
    mta: "検出したメールサーバ",
    unknown: "不明",
    evidence: "証拠",
    first_seen: "初回検出",
    resolved_at: "解決",
    fix: "対処方法",
    stop: "このホストではメールサーバを動かさないでください",
    footer: "このメールは relayguard が自動送信しています。今後は新しい問題・変化・解決があった場合と、未対応の問題が残っている場合の再通知のみお送りします。ご質問はこのメールに返信してください。",
};

fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::En => &EN,
        Lang::Ja => &JA,
    }
}

fn change_label(c: &Change, lang: Lang) -> String {
    match (lang, c) {
        (Lang::En, Change::New) => "new".into(),
        (Lang::En, Change::Reopened) => "open again".into(),
        (Lang::En, Change::SeverityChanged { from }) => format!("severity changed (was {from})"),
        (Lang::En, Change::Reminder) => "still open (reminder)".into(),
        (Lang::En, Change::StillOpen) => "still open".into(),
        (Lang::En, Change::Resolved) => "resolved".into(),
        (Lang::Ja, Change::New) => "新規".into(),
        (Lang::Ja, Change::Reopened) => "再発".into(),
        (Lang::Ja, Change::SeverityChanged { from }) => format!("重大度変更（以前は {from}）"),
        (Lang::Ja, Change::Reminder) => "未対応（再通知）".into(),
        (Lang::Ja, Change::StillOpen) => "未対応".into(),
        (Lang::Ja, Change::Resolved) => "解決済み".into(),
    }
}

/// The subject line (one line; lettre RFC 2047-encodes it when it is not ASCII).
pub fn subject(d: &Digest, lang: Lang) -> String {
    let (news, resolved, open) = d.counts();
    match lang {
        Lang::En if news == 0 && resolved == 0 => {
            format!("[relayguard] Reminder: {open} mail server finding(s) still open on your hosts")
        }
        Lang::En => format!(
            "[relayguard] Mail server findings on your hosts: {news} new, {resolved} resolved, {open} open"
        ),
        Lang::Ja if news == 0 && resolved == 0 => {
            format!(
                "[relayguard] 再通知: 管理ホストに未対応のメールサーバの問題が {open} 件あります"
            )
        }
        Lang::Ja => format!(
            "[relayguard] 管理ホストのメールサーバ検査結果: 新規 {news} 件、解決 {resolved} 件、未対応 {open} 件"
        ),
    }
}

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

fn intro(d: &Digest, l: &Labels) -> String {
    match &d.contact.via {
        Via::Registered => l.intro_registered.to_string(),
        Via::NetworkOwner(cidr) => l.intro_owner.replace("{cidr}", cidr),
        Via::Fallback => l.intro_fallback.to_string(),
    }
}

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

/// The HTML part; every piece of registry or scan data is escaped.
pub fn render_html(d: &Digest, lang: Lang, rem: &Remediation) -> String {
    let l = labels(lang);
    let e = html_escape;
    let mut h = String::new();
    let lang_tag = match lang {
        Lang::En => "en",
        Lang::Ja => "ja",
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{lang_tag}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family: sans-serif\">\n",
        e(&subject(d, lang))
    );
    let name = greeting_name(d);
    let _ = writeln!(
        h,
        "<p>{}</p>\n<p>{}</p>",
        e(&l.greeting.replace("{name}", &name)),
        e(&intro(d, l))
    );
    let _ = writeln!(
        h,
        "<h2>{}</h2>\n<table border=\"1\" cellpadding=\"4\" style=\"border-collapse: collapse\">\n<tr>",
        e(l.summary)
    );
    for c in l.cols {
        let _ = write!(h, "<th>{}</th>", e(c));
    }
    let _ = writeln!(h, "</tr>");
    for s in &d.hosts {
        for i in &s.items {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&s.address),
                i.finding.port,
                e(i.finding.severity.as_str()),
                e(&change_label(&i.change, lang)),
                e(&i.finding.kind)
            );
        }
    }
    let _ = writeln!(h, "</table>");
    for s in &d.hosts {
        let _ = writeln!(h, "<h2>{}</h2>", e(&host_title(s)));
        let _ = writeln!(
            h,
            "<p>{}: <b>{}</b></p>",
            e(l.mta),
            e(s.mta.as_deref().unwrap_or(l.unknown))
        );
        for i in &s.items {
            let f = &i.finding;
            let _ = writeln!(
                h,
                "<h3>[{}] {} (port {}) &mdash; {}</h3>\n<p>{}</p>",
                e(f.severity.as_str()),
                e(&f.kind),
                f.port,
                e(&change_label(&i.change, lang)),
                e(&f.summary)
            );
            let _ = write!(h, "<p>{}: {}", e(l.first_seen), e(&date(f.first_seen)));
            if let Some(r) = f
                .resolved_at
                .filter(|_| f.status == FindingStatus::Resolved)
            {
                let _ = write!(h, "; {}: {}", e(l.resolved_at), e(&date(r)));
            }
            let _ = writeln!(h, "</p>");
            if f.status == FindingStatus::Open {
                let ev = evidence_lines(f);
                if !ev.is_empty() {
                    let _ = writeln!(
                        h,
                        "<p>{}:</p>\n<pre>{}</pre>",
                        e(l.evidence),
                        e(&ev.join("\n"))
                    );
                }
            }
        }
        for (heading, name, text) in remedies(s, rem, lang) {
            let _ = writeln!(
                h,
                "<h3>{} ({})</h3>\n<pre>{}</pre>",
                e(heading),
                e(name),
                e(text)
            );
        }
    }
    let _ = writeln!(
        h,
        "<hr>\n<p><small>{}</small></p>\n</body></html>",
        e(l.footer)
    );
    h
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
    use relayguard_core::Severity;
    use serde_json::json;

    fn finding(status: FindingStatus, evidence: serde_json::Value) -> FindingRow {
        FindingRow {
            id: 1,
            address: "192.0.2.1".into(),
            port: 25,
            kind: "open-relay".into(),
            source: FindingSource::Sweep,
            severity: Severity::Critical,
            summary: "s".into(),
            evidence,
            status,
            first_seen: 0,
            last_seen: 0,
            resolved_at: None,
            last_sweep: None,
            admin_email: None,
        }
    }

    #[test]
    fn evidence_quotes_envelope_lines_with_control_characters_escaped() {
        let f = finding(
            FindingStatus::Open,
            json!({"tests": ["v1"], "transcript": [
                {"session": 1, "ms": 0, "dir": "server", "text": "220 \u{1b}[31mhi"},
                {"session": 1, "ms": 1, "dir": "client", "text": "MAIL FROM:<a@b.c>"},
                {"session": 1, "ms": 2, "dir": "server", "text": "250 ok\r\nBcc: x"},
                {"session": 1, "ms": 3, "dir": "client", "text": "QUIT"},
                {"session": 1, "ms": 4, "dir": "server", "text": "221 bye"}
            ]}),
        );
        assert_eq!(
            evidence_lines(&f),
            vec!["tests: v1", "C: MAIL FROM:<a@b.c>", "S: 250 ok\\r\\nBcc: x"]
        );
        let f = finding(
            FindingStatus::Open,
            json!({"banner": "220 \u{1b}[2J", "ptr": null, "sweep": 3}),
        );
        assert_eq!(
            evidence_lines(&f),
            vec!["banner: 220 \\u{1b}[2J", "sweep: 3"]
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn news_is_decided_against_the_last_notice() {
        let open = finding(FindingStatus::Open, json!({}));
        let resolved = finding(FindingStatus::Resolved, json!({}));
        let last = |status, severity: &str, sent_at| LastNotice {
            status,
            severity: severity.into(),
            sent_at,
        };
        let day = Some(86_400);
        assert_eq!(classify(&open, None, 10, day), Some(Change::New));
        assert_eq!(
            classify(
                &open,
                Some(&last(FindingStatus::Resolved, "critical", 0)),
                10,
                day
            ),
            Some(Change::Reopened)
        );
        assert_eq!(
            classify(&open, Some(&last(FindingStatus::Open, "high", 0)), 10, day),
            Some(Change::SeverityChanged {
                from: "high".into()
            })
        );
        let told = last(FindingStatus::Open, "critical", 0);
        assert_eq!(
            classify(&open, Some(&told), 10, day),
            Some(Change::StillOpen)
        );
        assert_eq!(
            classify(&open, Some(&told), 86_400, day),
            Some(Change::Reminder)
        );
        assert_eq!(
            classify(&open, Some(&told), 86_400 * 30, None),
            Some(Change::StillOpen)
        );
        assert_eq!(
            classify(&resolved, Some(&told), 10, day),
            Some(Change::Resolved)
        );
        assert_eq!(classify(&resolved, None, 10, day), None);
        let told_resolved = last(FindingStatus::Resolved, "critical", 0);
        assert_eq!(classify(&resolved, Some(&told_resolved), 10, day), None);
    }
}
