//! Vantages: which vantage points saw a finding, and what that says about it.
//!
//! A relay open to the Internet is worse than one open only to the campus, and a sweep from the
//! lab says nothing about what the outside sees (nor the reverse). So a sweep-made finding keeps
//! the set of vantages whose latest covering sweep saw it: a sweep from one of them that covers
//! it and no longer sees it takes its vantage out of the set, and the finding is resolved only
//! when the set is empty. A sweep from a vantage outside the set leaves it alone.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use relayguard_core::{FindingKind, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::FindingKey;

/// Where a vantage point looks at the campus from, as the registry has it marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    /// Outside the campus firewall: what the Internet sees.
    External,
    /// Inside it: what a campus machine sees.
    Internal,
}

impl Exposure {
    /// The lower-case name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::External => "external",
            Exposure::Internal => "internal",
        }
    }
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Exposure {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s.trim() {
            "external" => Ok(Exposure::External),
            "internal" => Ok(Exposure::Internal),
            other => Err(crate::error::Error::Invalid(format!(
                "invalid vantage exposure {other:?} (expected external or internal)"
            ))),
        }
    }
}

/// The vantages the registry has marked; any other vantage counts as internal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vantages(pub HashMap<String, Exposure>);

impl Vantages {
    /// Whether `name` is marked external (an unmarked vantage is not).
    pub fn is_external(&self, name: &str) -> bool {
        self.0.get(name) == Some(&Exposure::External)
    }

    /// Whether `name` is marked internal. Unmarked vantages count as internal for
    /// `reachable-from-outside`, but only a vantage marked internal lowers an `open-relay`: a
    /// sweep nobody classified (the default vantage `local`) must not quietly turn a relay
    /// from critical to high.
    pub fn is_marked_internal(&self, name: &str) -> bool {
        self.0.get(name) == Some(&Exposure::Internal)
    }

    /// The severity of a finding of `kind` seen from `seen_by`, `base` being the one the sweep
    /// (or the rules) gave it: an `open-relay` that only vantages marked internal saw is at
    /// most high. Other kinds keep `base`.
    pub fn severity(&self, kind: FindingKind, base: Severity, seen_by: &[String]) -> Severity {
        if kind == FindingKind::OpenRelay
            && !seen_by.is_empty()
            && seen_by.iter().all(|v| self.is_marked_internal(v))
            && base.rank() > Severity::High.rank()
        {
            Severity::High
        } else {
            base
        }
    }

    /// Writes into a finding's evidence which vantages saw it, each with its exposure, and for
    /// an `open-relay` why it has the severity it has.
    pub fn annotate(&self, evidence: &mut Value, kind: FindingKind, seen_by: &[String]) {
        let Some(map) = evidence.as_object_mut() else {
            return;
        };
        let list: Vec<Value> = seen_by
            .iter()
            .map(|v| json!({ "name": v, "exposure": self.label(v) }))
            .collect();
        map.insert("vantages".into(), Value::Array(list));
        if kind == FindingKind::OpenRelay && !seen_by.is_empty() {
            let external: Vec<&str> = seen_by
                .iter()
                .filter(|v| self.is_external(v))
                .map(String::as_str)
                .collect();
            let why = if !external.is_empty() {
                format!(
                    "critical: relays from outside the campus (external vantage {})",
                    external.join(", ")
                )
            } else if seen_by.iter().all(|v| self.is_marked_internal(v)) {
                format!(
                    "high: relays only from inside the campus (seen only from internal vantage {})",
                    seen_by.join(", ")
                )
            } else {
                format!(
                    "as the sweep judged it: vantage {} not marked internal or external",
                    seen_by
                        .iter()
                        .filter(|v| !self.is_marked_internal(v))
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            map.insert("severity_by_vantage".into(), Value::String(why));
        }
    }

    fn label(&self, name: &str) -> &'static str {
        match self.0.get(name) {
            Some(e) => e.as_str(),
            None => "unmarked (counts as internal)",
        }
    }
}

/// The vantages that saw a finding once `vantage` saw it too, sorted and without repeats.
pub(super) fn with(seen_by: &[String], vantage: Option<&str>) -> Vec<String> {
    let mut set: BTreeSet<String> = seen_by.iter().cloned().collect();
    if let Some(v) = vantage {
        set.insert(v.to_string());
    }
    set.into_iter().collect()
}

/// An open finding that a sweep from one of the vantages that saw it covered and no longer saw,
/// while other vantages still see it: it stays open, seen by the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Narrowed {
    /// Which finding.
    pub key: FindingKey,
    /// The vantages that still see it.
    pub vantages: Vec<String>,
    /// Its severity as seen from them, for the kinds whose severity the vantages decide
    /// (`open-relay`); `None` leaves it as it is.
    pub severity: Option<Severity>,
}
