//! Reconciliation: turning sweep observations, registrations and agent reports into findings.
//!
//! Pure functions over a [`Snapshot`] of what the registry knows: they return the [`Changes`] to
//! make, and the store applies them ([`crate::Store::apply`]) in the same write transaction in
//! which it read the snapshot. No SQL here, so the lifecycle rules are tested without a database
//! (see the tests at the end of this file).
//!
//! Keys are (address, port, kind). A sweep-sourced finding is resolved only by a later sweep that
//! *covered* its address and port and no longer saw it: a sweep of another block says nothing.
//! A sweep-made finding also remembers the vantages that saw it (see [`vantage`]): only a sweep
//! from one of them can resolve it, and an `open-relay` seen only from inside the campus is high
//! rather than critical. A sweep from a vantage marked external also opens
//! `reachable-from-outside` for every SMTP listener that is not a registered `mail-direct` host.
//! A finding derived from tests (`open-relay`, `backscatter-source`, `vrfy-enabled`,
//! `expn-enabled`) is resolved only by a sweep that judged the same thing: every test of that
//! kind got a definite answer (refused or auth-required), or the port no longer answers. A sweep
//! that could not judge (greylisting, a deadline, a session that never got that far) leaves the
//! finding open, its last-seen untouched, and says why in its notes ([`Changes::held`]).
//! The kinds the registry derives itself (`unregistered-mta`, `non-mail-host-listening`,
//! `registration-stale`, `registration-expired`, `mta-enabled-on-non-mail-host`,
//! `mta-reappeared`, `mail-queue-backlog`, `bounce-burst`) take their
//! severity from the registry's rules ([`Snapshot::rules`]), so `rules/severities.yaml` overrides
//! apply to them; findings the scanner made keep the severity the sweep gave them.

mod coverage;
pub mod vantage;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use relayguard_core::agent_report::{AgentReport, FactKind};
use relayguard_core::escape_controls;
use relayguard_core::rules::RuleSet;
use relayguard_core::scan::{HostResult, PortState, TestKind, Verdict};
use relayguard_core::{FindingKind, Severity};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::Date;

pub use coverage::Coverage;
pub use vantage::{Exposure, Narrowed, Vantages};

use crate::model::{HealthThresholds, Host, HostStatus, Role, canonical_ip};

/// How long after an agent switched a returning MTA off again `mta-reappeared` stays open:
/// reports within this many seconds of the reappearance keep it open, a later one resolves it.
pub const REAPPEARED_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// Messages in a mail server's queue from which its agent's report opens `mail-queue-backlog`,
/// unless the host has its own threshold (`host_health_thresholds`).
pub const QUEUE_BACKLOG_MESSAGES: u64 = 500;
/// Null-sender messages (bounces) in a mail server's queue, or bounces it generated since its
/// previous report, from which `bounce-burst` opens.
pub const BOUNCE_BURST_MESSAGES: u64 = 100;
/// Consecutive covering sweeps without a listener before a registration counts as stale.
pub const STALE_AFTER_MISSES: i64 = 2;
/// The port registry-level findings about SMTP service use.
pub const SMTP_PORT: i64 = 25;

/// What produced a finding, which decides what may resolve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingSource {
    /// A sweep observation: resolved by a later sweep that covers the address and port.
    Sweep,
    /// The registration itself (stale, expired): resolved by registry checks.
    Registry,
    /// A host agent's report: resolved by a later report.
    Agent,
}

impl FindingSource {
    /// The lower-case name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingSource::Sweep => "sweep",
            FindingSource::Registry => "registry",
            FindingSource::Agent => "agent",
        }
    }
}

/// The identity of a finding: one row per (address, port, kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FindingKey {
    /// Canonical address text.
    pub address: String,
    /// Port (0 for findings about the host or the registration rather than a listener).
    pub port: i64,
    /// Kind.
    pub kind: FindingKind,
}

/// A finding that is open in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFinding {
    /// Which finding.
    pub key: FindingKey,
    /// What produced it.
    pub source: FindingSource,
    /// The vantages whose latest covering sweep saw it (empty: not a sweep's, or recorded
    /// before vantages were kept; any covering sweep may then resolve it).
    pub vantages: Vec<String>,
}

/// Everything reconciliation reads: the registrations, their missed-sweep counters, the open
/// findings, the day, the rules, and the sweep being recorded (its row is written first, so its
/// findings and evidence can name it).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every registration.
    pub hosts: Vec<Host>,
    /// Consecutive covering sweeps without a listener, per registered address (absent: 0).
    pub missed_sweeps: HashMap<String, i64>,
    /// Every open finding.
    pub open: Vec<OpenFinding>,
    /// Today (UTC), for overdue reviews.
    pub today: Date,
    /// The rules whose severities the registry's own findings take.
    pub rules: Arc<RuleSet>,
    /// The id of the sweep being reconciled, if it is a sweep.
    pub sweep: Option<i64>,
    /// The vantage of the sweep being reconciled, if it is a sweep.
    pub vantage: Option<String>,
    /// The vantages the registry has marked external or internal.
    pub vantages: Vantages,
}

impl Snapshot {
    /// The ports (canonical address text, port) whose results reconciliation reads the tests
    /// of: those with an open finding that a test decides (open relay, backscatter, VRFY,
    /// EXPN), which a sweep that does not find it again resolves only on definite refusals.
    /// Every other result is reconciled on its findings and state alone, so its tests (most of
    /// a campus sweep's results) need not be kept for it.
    pub fn ports_judged_by_tests(&self) -> HashSet<(&str, i64)> {
        self.open
            .iter()
            .filter(|o| test_of(o.key.kind).is_some())
            .map(|o| (o.key.address.as_str(), o.key.port))
            .collect()
    }

    fn open_vantages(&self, key: &FindingKey) -> &[String] {
        self.open
            .iter()
            .find(|o| &o.key == key)
            .map(|o| o.vantages.as_slice())
            .unwrap_or_default()
    }

    /// Whether the sweep being reconciled comes from a vantage marked external.
    fn swept_from_outside(&self) -> bool {
        self.vantage
            .as_deref()
            .is_some_and(|v| self.vantages.is_external(v))
    }

    fn is_open(&self, address: &str, port: i64, kind: FindingKind) -> bool {
        self.open
            .iter()
            .any(|o| o.key.address == address && o.key.port == port && o.key.kind == kind)
    }
}

/// Everything needed to open (or refresh, or reopen) one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFinding {
    /// Which finding.
    pub key: FindingKey,
    /// What produced it.
    pub source: FindingSource,
    /// How urgent it is.
    pub severity: Severity,
    /// One sentence for a human (may quote what a remote server said).
    pub summary: String,
    /// The proof, as compact JSON text. Parsed trees of a sweep's findings all at once took
    /// about ten times their text (a map node per transcript line): ~7 MiB for the campus /16's
    /// 512 findings, most of what recording that sweep added to its peak memory.
    pub evidence: String,
    /// The sweep that saw it, when a sweep did.
    pub sweep: Option<i64>,
    /// The address the sweep tested the host from, when a sweep saw it and recorded one.
    pub tested_from: Option<String>,
    /// The vantages that see it, this sweep's included (empty unless a sweep saw it).
    pub vantages: Vec<String>,
}

/// A change to a registration's missed-sweep counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter {
    /// The registered mail server answered SMTP: the counter goes back to 0.
    Listening(String),
    /// A covering sweep did not see it: the counter becomes `misses`.
    Missed {
        /// The registered address.
        address: String,
        /// Consecutive covering sweeps without a listener, this one included.
        misses: i64,
    },
}

/// An open finding a sweep covered, did not see again, and still leaves open because it could
/// not judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Which finding.
    pub key: FindingKey,
    /// Why the sweep could not judge it, for the sweep's notes.
    pub reason: String,
}

impl Held {
    /// The note recorded with the sweep.
    pub fn note(&self) -> String {
        format!(
            "{} on {} port {} stays open: {}",
            self.key.kind, self.key.address, self.key.port, self.reason
        )
    }
}

/// What reconciliation decided; [`crate::Store::apply`] makes it so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Findings to open, or to refresh when open, or to reopen when resolved.
    pub open: Vec<NewFinding>,
    /// Open findings to resolve.
    pub resolve: Vec<FindingKey>,
    /// Missed-sweep counters to update.
    pub counters: Vec<Counter>,
    /// Findings left open (untouched) because the sweep could not judge them.
    pub held: Vec<Held>,
    /// Open findings this sweep's vantage no longer sees but others still do.
    pub narrow: Vec<Narrowed>,
}

impl Changes {
    /// Adds a finding to open unless one with the same key is already there (the scanner may
    /// report the same kind twice for one port: the first one stands).
    fn open(&mut self, f: NewFinding) {
        if !self.open.iter().any(|o| o.key == f.key) {
            self.open.push(f);
        }
    }

    /// Adds a resolution, unless the same finding is opened or already resolved by this change.
    fn resolve(&mut self, key: FindingKey) {
        if !self.open.iter().any(|o| o.key == key) && !self.resolve.contains(&key) {
            self.resolve.push(key);
        }
    }

    /// Appends the changes of `other`.
    fn extend(&mut self, other: Changes) {
        for f in other.open {
            self.open(f);
        }
        for k in other.resolve {
            self.resolve(k);
        }
        self.counters.extend(other.counters);
        self.held.extend(other.held);
        self.narrow.extend(other.narrow);
    }
}

/// The changes a sweep brings: the scanner's findings and the registry's own (unregistered or
/// non-mail listeners, stale registrations) opened; findings of earlier sweeps on covered
/// addresses and ports that this sweep no longer saw resolved; then the registration checks of
/// [`registrations`].
pub fn reconcile(snapshot: &Snapshot, results: &[HostResult], coverage: &Coverage) -> Changes {
    let rules = &snapshot.rules;
    let hosts: HashMap<&str, &Host> = snapshot
        .hosts
        .iter()
        .map(|h| (h.address.as_str(), h))
        .collect();
    let mut changes = Changes::default();
    let mut listening: HashSet<IpAddr> = HashSet::new();
    let vantage = snapshot.vantage.as_deref();
    let from_outside = snapshot.swept_from_outside();
    // A sweep's finding as seen from the vantages that see it now: this sweep's and those that
    // saw it before, the severity an open relay has from them and the evidence saying so.
    let seen = |key: FindingKey,
                severity: Severity,
                summary: String,
                mut evidence: serde_json::Value,
                r: &HostResult| {
        let vantages = vantage::with(snapshot.open_vantages(&key), vantage);
        snapshot
            .vantages
            .annotate(&mut evidence, key.kind, &vantages);
        let evidence = evidence.to_string();
        NewFinding {
            severity: snapshot.vantages.severity(key.kind, severity, &vantages),
            key,
            source: FindingSource::Sweep,
            summary,
            evidence,
            sweep: snapshot.sweep,
            tested_from: r.source.map(|s| s.to_string()),
            vantages,
        }
    };

    for r in results {
        let ip = canonical_ip(r.address);
        let address = ip.to_string();
        let port = i64::from(r.port);
        let key = |kind| FindingKey {
            address: address.clone(),
            port,
            kind,
        };
        for f in &r.findings {
            changes.open(seen(
                key(f.kind),
                f.severity,
                f.summary.clone(),
                serde_json::to_value(&f.evidence).unwrap_or_default(),
                r,
            ));
        }
        if r.state == PortState::Open
            && let Some(smtp) = &r.smtp
        {
            listening.insert(ip);
            let evidence = json!({ "sweep": snapshot.sweep, "banner": smtp.banner, "ptr": r.ptr });
            let registered = hosts
                .get(address.as_str())
                .filter(|h| h.status == HostStatus::Active);
            if from_outside && registered.is_none_or(|h| h.role != Role::MailDirect) {
                let what = match registered {
                    Some(h) => format!("{} ({address}), registered {},", h.hostname, h.role),
                    None => format!("{address}, which has no active registration,"),
                };
                changes.open(seen(
                    key(FindingKind::ReachableFromOutside),
                    rules.severity(FindingKind::ReachableFromOutside),
                    format!(
                        "{what} answers SMTP on port {port} from outside the campus (vantage {})",
                        vantage.unwrap_or_default()
                    ),
                    evidence.clone(),
                    r,
                ));
            }
            let derived = match registered {
                None => Some((
                    FindingKind::UnregisteredMta,
                    format!(
                        "SMTP listener on {address} port {port}, which has no active mail registration"
                    ),
                )),
                Some(h) if h.role == Role::NonMail => Some((
                    FindingKind::NonMailHostListening,
                    format!(
                        "{} ({address}) is registered as non-mail but answers SMTP on port {port}",
                        h.hostname
                    ),
                )),
                Some(_) => None,
            };
            if let Some((kind, summary)) = derived {
                changes.open(seen(key(kind), rules.severity(kind), summary, evidence, r));
            }
        }
    }

    // Anything open from earlier sweeps, on an address and port this sweep covered, that this
    // sweep did not see again, is gone, provided the sweep judged it.
    let seen_now: HashSet<FindingKey> = changes.open.iter().map(|f| f.key.clone()).collect();
    let by_port: HashMap<(IpAddr, u16), &HostResult> = results
        .iter()
        .map(|r| ((canonical_ip(r.address), r.port), r))
        .collect();
    for o in snapshot
        .open
        .iter()
        .filter(|o| o.source == FindingSource::Sweep)
    {
        let (Ok(ip), Ok(port)) = (o.key.address.parse::<IpAddr>(), u16::try_from(o.key.port))
        else {
            continue;
        };
        // Another vantage's finding: this sweep did not look from where it was seen.
        if let Some(v) = vantage
            && !o.vantages.is_empty()
            && !o.vantages.iter().any(|s| s == v)
        {
            continue;
        }
        if coverage.covers(ip, port) && !seen_now.contains(&o.key) {
            let remaining: Vec<String> = o
                .vantages
                .iter()
                .filter(|s| Some(s.as_str()) != vantage)
                .cloned()
                .collect();
            match unjudged(o.key.kind, by_port.get(&(ip, port)).copied()) {
                Some(reason) => changes.held.push(Held {
                    key: o.key.clone(),
                    reason,
                }),
                None if remaining.is_empty() => changes.resolve(o.key.clone()),
                None => changes.narrow.push(Narrowed {
                    key: o.key.clone(),
                    severity: (o.key.kind == FindingKind::OpenRelay).then(|| {
                        snapshot.vantages.severity(
                            o.key.kind,
                            rules.severity(o.key.kind),
                            &remaining,
                        )
                    }),
                    vantages: remaining,
                }),
            }
        }
    }

    // Registered mail servers: count consecutive covering sweeps without a listener.
    for h in &snapshot.hosts {
        let Ok(ip) = h.address.parse::<IpAddr>() else {
            continue;
        };
        // From outside, only a mail-direct host is meant to answer: the silence of the others
        // there is the firewall's doing, not theirs.
        if h.status != HostStatus::Active
            || !h.role.is_mail()
            || !coverage.covers(ip, SMTP_PORT as u16)
            || (from_outside && h.role != Role::MailDirect)
        {
            continue;
        }
        let stale = FindingKey {
            address: h.address.clone(),
            port: SMTP_PORT,
            kind: FindingKind::RegistrationStale,
        };
        if listening.contains(&ip) {
            changes.counters.push(Counter::Listening(h.address.clone()));
            if snapshot.is_open(&h.address, SMTP_PORT, FindingKind::RegistrationStale) {
                changes.resolve(stale);
            }
        } else {
            let misses = snapshot.missed_sweeps.get(&h.address).copied().unwrap_or(0) + 1;
            changes.counters.push(Counter::Missed {
                address: h.address.clone(),
                misses,
            });
            if misses >= STALE_AFTER_MISSES {
                changes.open(NewFinding {
                    key: stale,
                    source: FindingSource::Registry,
                    severity: rules.severity(FindingKind::RegistrationStale),
                    summary: format!(
                        "{} ({}) is registered as {} but did not answer SMTP in the last {misses} sweeps that covered it",
                        h.hostname, h.address, h.role
                    ),
                    evidence: json!({ "missed_sweeps": misses, "sweep": snapshot.sweep }).to_string(),
                    sweep: snapshot.sweep,
                    tested_from: None,
                    vantages: Vec::new(),
                });
            }
        }
    }

    changes.extend(registrations(snapshot));
    changes
}

/// The test behind a finding kind, for the kinds a test decides.
fn test_of(kind: FindingKind) -> Option<(TestKind, &'static str)> {
    Some(match kind {
        FindingKind::OpenRelay => (TestKind::Relay, "relay"),
        FindingKind::BackscatterSource => (TestKind::Backscatter, "unknown-recipient"),
        FindingKind::VrfyEnabled => (TestKind::Vrfy, "VRFY"),
        FindingKind::ExpnEnabled => (TestKind::Expn, "EXPN"),
        _ => return None,
    })
}

/// Why this sweep's `result` for a port cannot tell that a finding of `kind` there is gone, or
/// `None` when it can: the kind is not decided by a test, the port no longer answers (no result
/// at all means discovery found it closed or silent), or every test of that kind got a definite
/// answer. An accepted or inconclusive answer, or no test at all, judges nothing.
fn unjudged(kind: FindingKind, result: Option<&HostResult>) -> Option<String> {
    const MAX_CHARS: usize = 200;
    let (test, name) = test_of(kind)?;
    let r = result?;
    if r.state != PortState::Open {
        return None;
    }
    let clip = |s: &str| -> String {
        let s = escape_controls(s);
        if s.chars().count() > MAX_CHARS {
            s.chars().take(MAX_CHARS).collect::<String>() + "…"
        } else {
            s
        }
    };
    let tests: Vec<_> = r.tests.iter().filter(|t| t.kind == test).collect();
    if tests.is_empty() {
        return Some(match &r.error {
            Some(e) => format!("no {name} test ran ({})", clip(e)),
            None => format!("no {name} test ran"),
        });
    }
    let undecided: Vec<_> = tests
        .iter()
        .filter(|t| !matches!(t.verdict, Verdict::Refused | Verdict::AuthRequired))
        .collect();
    let first = undecided.first()?;
    let why = first.note.as_deref().unwrap_or(&first.reply);
    Some(format!(
        "{} of {} {name} tests got no definite answer (first: {} {}: {})",
        undecided.len(),
        tests.len(),
        clip(&first.id),
        first.verdict.as_str(),
        clip(why)
    ))
}

/// Brings the registry-level findings in line with the registrations as of
/// [`Snapshot::today`]: overdue reviews open `registration-expired`; reviewed, retired or removed
/// ones resolve it; staleness is dropped for registrations that are no longer active mail servers.
pub fn registrations(snapshot: &Snapshot) -> Changes {
    let rules = &snapshot.rules;
    let mut changes = Changes::default();
    for h in &snapshot.hosts {
        let expired = FindingKey {
            address: h.address.clone(),
            port: 0,
            kind: FindingKind::RegistrationExpired,
        };
        if h.status == HostStatus::Active && h.review_overdue(snapshot.today) {
            let due = h
                .review_due()
                .map(crate::model::format_date)
                .unwrap_or_default();
            changes.open(NewFinding {
                key: expired,
                source: FindingSource::Registry,
                severity: rules.severity(FindingKind::RegistrationExpired),
                summary: format!(
                    "registration of {} ({}) was due for review on {due}",
                    h.hostname, h.address
                ),
                evidence: json!({ "reviewed_on": h.reviewed_on, "review_months": h.review_months, "due": due }).to_string(),
                sweep: None,
                tested_from: None,
                vantages: Vec::new(),
            });
        } else if snapshot.is_open(&h.address, 0, FindingKind::RegistrationExpired) {
            changes.resolve(expired);
        }
        if (h.status != HostStatus::Active || !h.role.is_mail())
            && snapshot.is_open(&h.address, SMTP_PORT, FindingKind::RegistrationStale)
        {
            changes.resolve(FindingKey {
                address: h.address.clone(),
                port: SMTP_PORT,
                kind: FindingKind::RegistrationStale,
            });
        }
    }
    // Findings about a registration make no sense once it is gone.
    for o in &snapshot.open {
        if o.source == FindingSource::Registry
            && !snapshot.hosts.iter().any(|h| h.address == o.key.address)
        {
            changes.resolve(o.key.clone());
        }
    }
    changes
}

/// Whether the report says a listening MTA is enabled at boot, and whether one is live.
pub fn report_flags(r: &AgentReport) -> (bool, bool) {
    let enabled = r
        .check
        .findings
        .iter()
        .any(|f| f.mta.listens() && f.fact == FactKind::EnabledAtBoot);
    let live = r
        .check
        .findings
        .iter()
        .any(|f| f.mta.listens() && matches!(f.fact, FactKind::Running | FactKind::Listening));
    (enabled, live)
}

/// The agent-derived finding of the host at `address` after a new report: open while a host
/// registered as non-mail has a listening MTA enabled at boot or running, resolved otherwise.
/// Queue health is judged by the default thresholds ([`agent_report_with`] takes the host's).
pub fn agent_report(snapshot: &Snapshot, address: &str, report: &AgentReport) -> Changes {
    agent_report_with(snapshot, address, report, HealthThresholds::default())
}

/// [`agent_report`], with the queue health judged by `thresholds` (the host's own).
pub fn agent_report_with(
    snapshot: &Snapshot,
    address: &str,
    report: &AgentReport,
    thresholds: HealthThresholds,
) -> Changes {
    let mut changes = Changes::default();
    let key = FindingKey {
        address: address.to_string(),
        port: 0,
        kind: FindingKind::MtaEnabledOnNonMailHost,
    };
    let (enabled, live) = report_flags(report);
    let non_mail = snapshot
        .hosts
        .iter()
        .any(|h| h.address == address && h.role == Role::NonMail && h.status == HostStatus::Active);
    if non_mail && (enabled || live) {
        let mtas: Vec<&str> = report
            .check
            .findings
            .iter()
            .filter(|f| f.mta.listens())
            .map(|f| f.mta.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        changes.open(NewFinding {
            key,
            source: FindingSource::Agent,
            severity: snapshot
                .rules
                .severity(FindingKind::MtaEnabledOnNonMailHost),
            summary: format!(
                "agent on {address} reports {} {} on a host registered as non-mail",
                mtas.join(", "),
                if live { "running" } else { "enabled at boot" }
            ),
            evidence:
                json!({ "agent_version": report.agent_version, "generated_at": report.generated_at,
                               "facts": report.check.findings })
                .to_string(),
            sweep: None,
            tested_from: None,
            vantages: Vec::new(),
        });
    } else if snapshot.is_open(address, 0, FindingKind::MtaEnabledOnNonMailHost) {
        changes.resolve(key);
    }
    changes.extend(reappeared(snapshot, address, report, non_mail));
    changes.extend(queue_health(snapshot, address, report, thresholds));
    changes
}

/// `mail-queue-backlog` and `bounce-burst` of a registered mail server, from the queue health
/// its agent reports: open at or over the host's thresholds, resolved by a report under them. A
/// report without queue health judges nothing.
fn queue_health(
    snapshot: &Snapshot,
    address: &str,
    report: &AgentReport,
    thresholds: HealthThresholds,
) -> Changes {
    let mut changes = Changes::default();
    let Some(q) = &report.queue else {
        return changes;
    };
    let mail = snapshot
        .hosts
        .iter()
        .any(|h| h.address == address && h.role != Role::NonMail && h.status == HostStatus::Active);
    let per_queue = q
        .queues
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let oldest = q
        .oldest_age_secs
        .map(|s| format!("; oldest {}h {}m", s / 3600, s % 3600 / 60))
        .unwrap_or_default();
    let since = q.bounces_since_last.unwrap_or(0);
    let (bounces, bounce_what) = if since > q.null_sender {
        (since, "bounces generated since the previous report")
    } else {
        (q.null_sender, "null-sender messages (bounces) queued")
    };
    for (kind, count, limit, what) in [
        (
            FindingKind::MailQueueBacklog,
            q.messages,
            thresholds.queue_backlog_threshold,
            "messages queued",
        ),
        (
            FindingKind::BounceBurst,
            bounces,
            thresholds.bounce_burst_threshold,
            bounce_what,
        ),
    ] {
        let key = FindingKey {
            address: address.to_string(),
            port: 0,
            kind,
        };
        if mail && count >= limit {
            changes.open(NewFinding {
                tested_from: None,
                key,
                source: FindingSource::Agent,
                severity: snapshot.rules.severity(kind),
                summary: escape_controls(&format!(
                    "{} on {address}: {count} {what} (threshold {limit}; {per_queue}{oldest})",
                    q.mta.as_str()
                )),
                evidence: json!({ "agent_version": report.agent_version, "generated_at": report.generated_at,
                                   "queue": q }).to_string(),
                sweep: None,
                vantages: Vec::new(),
            });
        } else if snapshot.is_open(address, 0, kind) {
            changes.resolve(key);
        }
    }
    changes
}

/// `mta-reappeared`: open while a report of a non-mail host lists an MTA that came back within
/// [`REAPPEARED_WINDOW_SECS`] of the report (the agent switched it off again), resolved by a
/// report without one.
fn reappeared(snapshot: &Snapshot, address: &str, report: &AgentReport, non_mail: bool) -> Changes {
    let mut changes = Changes::default();
    let key = FindingKey {
        address: address.to_string(),
        port: 0,
        kind: FindingKind::MtaReappeared,
    };
    let recent: Vec<_> = report
        .reappeared
        .iter()
        .filter(|r| r.at.saturating_add(REAPPEARED_WINDOW_SECS) >= report.generated_at)
        .collect();
    if non_mail && !recent.is_empty() {
        // The newest reappearance of each MTA, in the order they came back.
        let mut latest: Vec<&relayguard_core::agent_report::Reappearance> = Vec::new();
        for r in &recent {
            latest.retain(|l| l.mta != r.mta);
            latest.push(r);
        }
        let what: Vec<String> = latest
            .iter()
            .map(|r| {
                let pkg = match (&r.package, &r.hardened_version) {
                    (Some(p), Some(v)) if *v != p.version => {
                        format!(" (package {} {}, was {v})", p.name, p.version)
                    }
                    (Some(p), _) => format!(" (package {} {})", p.name, p.version),
                    (None, _) => String::new(),
                };
                format!(
                    "{} {}{pkg}",
                    r.mta.as_str(),
                    if r.previously_hardened {
                        "enabled again"
                    } else {
                        "newly enabled"
                    }
                )
            })
            .collect();
        changes.open(NewFinding {
            tested_from: None,
            vantages: Vec::new(),
            key,
            source: FindingSource::Agent,
            severity: snapshot.rules.severity(FindingKind::MtaReappeared),
            summary: escape_controls(&format!(
                "agent on {address} switched off an MTA that came back: {}",
                what.join("; ")
            )),
            evidence:
                json!({ "agent_version": report.agent_version, "generated_at": report.generated_at,
                               "reappeared": recent })
                .to_string(),
            sweep: None,
        });
    } else if snapshot.is_open(address, 0, FindingKind::MtaReappeared) {
        changes.resolve(key);
    }
    changes
}

#[cfg(test)]
mod tests;
