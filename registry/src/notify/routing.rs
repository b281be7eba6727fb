//! Who gets what: one digest per responsible address (the registered admin, else the network
//! owner, else the security team's fallback), and which findings are news to them since the last
//! notice.

use std::collections::{BTreeMap, HashMap};

use super::sent::LastNotice;
use crate::model::{Host, Network};
use crate::store::{FindingRow, FindingStatus, most_specific};

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
    /// The language the registry knows for this address, if any.
    pub lang: Option<crate::model::Lang>,
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
                lang: h.admin_lang,
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
        lang: net.owner_lang,
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
        // An override in force keeps the finding out of every digest.
        let day = time::OffsetDateTime::from_unix_timestamp(now)
            .map(time::OffsetDateTime::date)
            .unwrap_or_else(|_| crate::model::today());
        if f.overridden_on(day) {
            continue;
        }
        let key = contact.email.to_ascii_lowercase();
        let last_notice = last.get(&(key.clone(), f.id));
        let Some(mut change) = classify(f, last_notice, now, reminder_secs) else {
            continue;
        };
        // A lapsed override (expired, or the evidence changed): the finding is back, and the
        // admin last heard of it before it was overridden, if at all.
        if let Some(o) = &f.overridden
            && f.status == FindingStatus::Open
            && last_notice.is_none_or(|l| l.sent_at < o.made_at)
        {
            change = Change::Reopened;
        }
        let lang = contact.lang;
        let entry = by_admin
            .entry(key)
            .or_insert_with(|| (contact, BTreeMap::new()));
        // One digest per address: a language set on any of its hosts (or block) is kept.
        entry.0.lang = entry.0.lang.or(lang);
        entry.1.entry(f.address.clone()).or_default().push(Item {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FindingSource;
    use relayguard_core::Severity;
    use serde_json::json;

    fn finding(status: FindingStatus, evidence: serde_json::Value) -> FindingRow {
        FindingRow {
            overridden: None,
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
            tested_from: None,
            vantages: vec![],
            admin_email: None,
        }
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
