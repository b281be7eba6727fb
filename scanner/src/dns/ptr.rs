//! Reverse DNS of an SMTP host: PTR present, forward-confirmed, not generic-looking (S25R).

use std::net::IpAddr;

use regex::Regex;
use relayguard_core::FindingKind;
use serde::Deserialize;

use super::names::reverse_name;
use super::resolver::{Dns, DnsError};
use super::{DnsLog, ReverseChecks, finding};

/// The built-in patterns, `rules/generic-ptr.yaml`.
const BUILTIN_GENERIC_PTR: &str = include_str!("../../../rules/generic-ptr.yaml");

/// A pattern file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenericPtrRulesError {
    /// The YAML does not parse or has unknown fields.
    #[error("{origin}: {message}")]
    Parse {
        /// Where the text came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A pattern does not compile.
    #[error("{origin}: pattern {id:?}: {message}")]
    Pattern {
        /// Where the text came from.
        origin: String,
        /// The pattern's id.
        id: String,
        /// The regex error.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFile {
    patterns: Vec<PatternEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternEntry {
    id: String,
    regex: String,
    #[serde(default)]
    why: String,
}

#[derive(Debug, Clone)]
struct Pattern {
    id: String,
    why: String,
    template: String,
    /// Compiled once when the pattern has no address placeholder.
    fixed: Option<Regex>,
}

const PLACEHOLDERS: [&str; 5] = ["{a}", "{b}", "{c}", "{d}", "{hex}"];

fn substitute(template: &str, ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    template
        .replace("{a}", &a.to_string())
        .replace("{b}", &b.to_string())
        .replace("{c}", &c.to_string())
        .replace("{d}", &d.to_string())
        .replace("{hex}", &format!("{:08x}", u32::from(ip)))
}

/// Which generic-PTR pattern matched a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericPtrMatch {
    /// The pattern's id, e.g. `s25r-1`.
    pub id: String,
    /// Its explanation.
    pub why: String,
}

/// S25R-style patterns for generic or dynamic-looking PTR names (see `rules/generic-ptr.yaml`).
#[derive(Debug, Clone)]
pub struct GenericPtrRules {
    patterns: Vec<Pattern>,
}

impl GenericPtrRules {
    /// The patterns compiled into the binary (`rules/generic-ptr.yaml`).
    pub fn builtin() -> GenericPtrRules {
        // The built-in file is checked by a unit test; should it ever be broken, use no
        // patterns rather than panic.
        GenericPtrRules::from_yaml(BUILTIN_GENERIC_PTR, "built-in generic-ptr.yaml")
            .unwrap_or(GenericPtrRules { patterns: vec![] })
    }

    /// Parses a pattern file; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<GenericPtrRules, GenericPtrRulesError> {
        let file: PatternFile =
            serde_saphyr::from_str(text).map_err(|e| GenericPtrRulesError::Parse {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        let mut patterns = Vec::with_capacity(file.patterns.len());
        for entry in file.patterns {
            let templated = PLACEHOLDERS.iter().any(|p| entry.regex.contains(p));
            let probe = if templated {
                substitute(&entry.regex, std::net::Ipv4Addr::new(192, 0, 2, 1))
            } else {
                entry.regex.clone()
            };
            let compiled = Regex::new(&probe).map_err(|e| GenericPtrRulesError::Pattern {
                origin: origin.to_string(),
                id: entry.id.clone(),
                message: e.to_string(),
            })?;
            patterns.push(Pattern {
                id: entry.id,
                why: entry.why,
                template: entry.regex,
                fixed: (!templated).then_some(compiled),
            });
        }
        Ok(GenericPtrRules { patterns })
    }

    /// How many patterns there are.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first pattern `name` (the PTR of `ip`) matches, if any.
    pub fn check(&self, name: &str, ip: IpAddr) -> Option<GenericPtrMatch> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.patterns.iter().find_map(|p| {
            let hit = match (&p.fixed, ip) {
                (Some(re), _) => re.is_match(&name),
                (None, IpAddr::V4(v4)) => {
                    Regex::new(&substitute(&p.template, v4)).is_ok_and(|re| re.is_match(&name))
                }
                (None, IpAddr::V6(_)) => false,
            };
            hit.then(|| GenericPtrMatch {
                id: p.id.clone(),
                why: p.why.clone(),
            })
        })
    }
}

impl Dns {
    /// Reverse DNS of one SMTP host: `no-ptr` when the address has no PTR,
    /// `ptr-not-confirmed` when no PTR name resolves back to the address (no forward-confirmed
    /// reverse DNS), `generic-ptr` when a PTR name matches a generic/dynamic pattern. Failed
    /// lookups go to `inconclusive`, never to a finding.
    pub async fn reverse_checks(&self, ip: IpAddr) -> ReverseChecks {
        let mut log = DnsLog::new();
        let mut out = ReverseChecks::default();
        let rname = reverse_name(ip);
        let names = match self.ptr(ip).await {
            Ok(names) if !names.is_empty() => names,
            Ok(_) | Err(DnsError::NotFound) => {
                log.note(format!("PTR {rname} -> no record (NXDOMAIN/NODATA)"));
                out.checks.findings.push(finding(
                    self,
                    FindingKind::NoPtr,
                    format!("{ip} has no PTR record ({rname})"),
                    log.lines(),
                ));
                return out;
            }
            Err(e) => {
                out.checks
                    .inconclusive
                    .push(format!("PTR {rname}: {e}; reverse DNS of {ip} not checked"));
                return out;
            }
        };
        for name in &names {
            log.note(format!("PTR {rname} -> {name}."));
        }
        out.ptr = names.first().cloned();

        // Forward confirmation: some PTR name must have the address among its A/AAAA.
        let mut confirmed = false;
        let mut failures = Vec::new();
        for name in &names {
            match self.addresses(name).await {
                Ok(addrs) => {
                    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                    log.note(format!("A/AAAA {name}. -> {}", list.join(", ")));
                    if addrs.contains(&ip) {
                        confirmed = true;
                        break;
                    }
                }
                Err(DnsError::NotFound) => {
                    log.note(format!("A/AAAA {name}. -> no record (NXDOMAIN/NODATA)"));
                }
                Err(e) => {
                    log.note(format!("A/AAAA {name}. -> {e}"));
                    failures.push(format!("A/AAAA {name}.: {e}"));
                }
            }
        }
        if !confirmed {
            if failures.len() == names.len() {
                out.checks.inconclusive.push(format!(
                    "forward confirmation of {ip} not checked: {}",
                    failures.join("; ")
                ));
            } else {
                out.checks.findings.push(finding(
                    self,
                    FindingKind::PtrNotConfirmed,
                    format!(
                        "{ip}'s PTR {} does not resolve back to {ip} (no forward-confirmed reverse DNS)",
                        names.join(", ")
                    ),
                    log.lines(),
                ));
            }
        }

        if let Some((name, hit)) = names
            .iter()
            .find_map(|n| self.generic.check(n, ip).map(|m| (n, m)))
        {
            let mut lines = log.lines();
            lines.truncate(names.len());
            let mut glog = DnsLog::new();
            glog.note(format!("generic-ptr rule {}: {}", hit.id, hit.why));
            lines.extend(glog.lines());
            out.checks.findings.push(finding(
                self,
                FindingKind::GenericPtr,
                format!(
                    "{ip}'s PTR {name} looks generic/dynamic (rule {}: {}); S25R receivers will refuse its mail",
                    hit.id, hit.why
                ),
                lines,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GenericPtrRules {
        GenericPtrRules::from_yaml(BUILTIN_GENERIC_PTR, "generic-ptr.yaml").unwrap()
    }

    #[test]
    fn builtin_rules_parse() {
        assert!(rules().len() >= 10);
        assert_eq!(GenericPtrRules::builtin().len(), rules().len());
    }

    #[test]
    fn names_embedding_the_address_are_generic() {
        let r = rules();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            r.check("host-192-0-2-10.campus.example.", ip).unwrap().id,
            "ip-octets"
        );
        assert_eq!(
            r.check("10.2.0.192.pool.isp.example", ip).unwrap().id,
            "ip-octets-reversed"
        );
        assert_eq!(r.check("c000020a.campus.example", ip).unwrap().id, "ip-hex");
    }

    #[test]
    fn dynamic_keywords_and_s25r_rules_match() {
        let r = rules();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        for (name, id) in [
            ("dhcp22.campus.example", "dynamic-keyword"),
            ("lab-pool-3.campus.example", "dynamic-keyword"),
            ("client.campus.example", "dynamic-keyword"),
            ("p1-2.campus.example", "s25r-1"),
            ("ab12345.campus.example", "s25r-2"),
            ("x.7abc.dept.campus.example", "s25r-3"),
            ("h7.a1-2.campus.example", "s25r-4"),
        ] {
            assert_eq!(r.check(name, ip).map(|m| m.id), Some(id.into()), "{name}");
        }
    }

    #[test]
    fn ordinary_mail_server_names_are_not_generic() {
        let r = rules();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        for name in [
            "mx.campus.example.",
            "mx2.campus.example",
            "mail.cs.campus.example",
            "smtp.campus.example",
            "dynamo.campus.example",
            "v6mail.campus.test",
        ] {
            assert_eq!(r.check(name, ip), None, "{name}");
        }
        // Address placeholders are skipped for IPv6.
        assert_eq!(r.check("mx.campus.example", "::1".parse().unwrap()), None);
    }

    #[test]
    fn bad_pattern_files_are_clear_errors() {
        let e = GenericPtrRules::from_yaml("patterns:\n  - id: x\n    regex: '('\n", "t.yaml")
            .unwrap_err();
        assert!(matches!(e, GenericPtrRulesError::Pattern { ref id, .. } if id == "x"));
        assert!(GenericPtrRules::from_yaml("patterns: 3", "t.yaml").is_err());
        assert!(GenericPtrRules::from_yaml("patterns: []\nextra: 1\n", "t.yaml").is_err());
    }
}
