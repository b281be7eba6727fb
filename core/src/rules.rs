//! Rule files: relay vectors, MTA fingerprints and severities.
//!
//! The defaults are compiled in from `rules/` so the binary works on its own; `--rules DIR`
//! replaces any of [`OVERRIDABLE_FILES`] with the operator's own and refuses other YAML files.
//! Every file is validated as a whole when loaded, so a broken rule is reported with its file and
//! entry before any packet is sent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::finding::{FindingKind, Severity};

const DEFAULT_RELAY_VECTORS: &str = include_str!("../../rules/relay-vectors.yaml");
const DEFAULT_FINGERPRINTS: &str = include_str!("../../rules/fingerprints.yaml");
const DEFAULT_SEVERITIES: &str = include_str!("../../rules/severities.yaml");

/// The file names looked for in a `--rules` directory.
pub const RELAY_VECTORS_FILE: &str = "relay-vectors.yaml";
/// See [`RELAY_VECTORS_FILE`].
pub const FINGERPRINTS_FILE: &str = "fingerprints.yaml";
/// See [`RELAY_VECTORS_FILE`].
pub const SEVERITIES_FILE: &str = "severities.yaml";
/// See [`RELAY_VECTORS_FILE`]; read by the scanner's DNS checks, which own its format.
pub const GENERIC_PTR_FILE: &str = "generic-ptr.yaml";

/// Every file a `--rules` directory may replace.
pub const OVERRIDABLE_FILES: [&str; 4] = [
    RELAY_VECTORS_FILE,
    FINGERPRINTS_FILE,
    SEVERITIES_FILE,
    GENERIC_PTR_FILE,
];

/// The files of `rules/` that a sweep's `--rules` directory cannot replace, and why.
pub const NOT_OVERRIDABLE_FILES: [(&str, &str); 1] = [(
    "remediation.yaml",
    "the fix texts are read by the registry's notify, which always uses its built-in copy",
)];

/// The placeholders a relay vector template may use.
pub const PLACEHOLDERS: [&str; 5] = ["from", "to", "ext", "host", "ip"];

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file could not be read.
    #[error("cannot read rule file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not have the expected shape.
    #[error("rule file {origin} is not valid: {message}")]
    Parse {
        /// The file (or `built-in <name>`).
        origin: String,
        /// The parser's message, with location.
        message: String,
    },
    /// A YAML file in a `--rules` directory that the sweep would not read: refused, so an
    /// operator never believes an edit is in force when it is not.
    #[error("rule file {path} is not read by a sweep: {why}")]
    NotRead {
        /// The file.
        path: PathBuf,
        /// Why, and which files are read.
        why: String,
    },
    /// An entry is well-formed YAML but makes no sense.
    #[error("rule file {origin}, entry {entry:?}: {message}")]
    Invalid {
        /// The file (or `built-in <name>`).
        origin: String,
        /// The entry's id or index.
        entry: String,
        /// What is wrong.
        message: String,
    },
}

/// One relay test: the envelope to offer, as templates with placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayVector {
    /// Stable identifier, used in output.
    pub id: String,
    /// Where the vector comes from (documentation only).
    #[serde(default)]
    pub source: String,
    /// The MAIL FROM argument, angle brackets included.
    pub mail_from: String,
    /// The RCPT TO argument, angle brackets included.
    pub rcpt_to: String,
}

impl RelayVector {
    /// Whether either template uses the `{host}` placeholder (and so is run once per own name).
    pub fn uses_host(&self) -> bool {
        self.mail_from.contains("{host}") || self.rcpt_to.contains("{host}")
    }
}

/// One MTA fingerprint: patterns that, when all match, name the MTA.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// The MTA's identifier, e.g. `postfix`.
    pub mta: String,
    /// Matched against the greeting.
    pub banner: Option<Regex>,
    /// Matched against each line of the EHLO/HELO reply.
    pub ehlo: Option<Regex>,
}

impl Fingerprint {
    /// Whether this fingerprint matches a greeting and EHLO reply lines.
    pub fn matches(&self, banner: &str, ehlo_lines: &[String]) -> bool {
        let banner_ok = self.banner.as_ref().is_none_or(|re| re.is_match(banner));
        let ehlo_ok = self
            .ehlo
            .as_ref()
            .is_none_or(|re| ehlo_lines.iter().any(|l| re.is_match(l)));
        banner_ok && ehlo_ok
    }
}

/// All the rules a sweep uses.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Relay vectors, in the order they are run.
    pub relay_vectors: Vec<RelayVector>,
    /// Fingerprints, first match wins.
    pub fingerprints: Vec<Fingerprint>,
    /// Severity overrides per kind.
    pub severities: BTreeMap<FindingKind, Severity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    vectors: Vec<RelayVector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintEntry {
    mta: String,
    banner: Option<String>,
    ehlo: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintFile {
    fingerprints: Vec<FingerprintEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeverityFile {
    severities: BTreeMap<String, Severity>,
}

impl RuleSet {
    /// The rules compiled into the binary.
    pub fn builtin() -> Result<RuleSet, RuleError> {
        Ok(RuleSet {
            relay_vectors: parse_vectors(DEFAULT_RELAY_VECTORS, "built-in relay-vectors.yaml")?,
            fingerprints: parse_fingerprints(DEFAULT_FINGERPRINTS, "built-in fingerprints.yaml")?,
            severities: parse_severities(DEFAULT_SEVERITIES, "built-in severities.yaml")?,
        })
    }

    /// The built-in rules, with each file present in `dir` replacing its built-in counterpart.
    ///
    /// Every file of [`OVERRIDABLE_FILES`] may be replaced (`generic-ptr.yaml` is parsed by the
    /// scanner's DNS checks, the others here). Any other YAML file in `dir` is an error that
    /// says which files are read: a misspelt `severity.yaml`, or a `remediation.yaml` (see
    /// [`NOT_OVERRIDABLE_FILES`]), would otherwise be silently ignored.
    pub fn load(dir: Option<&Path>) -> Result<RuleSet, RuleError> {
        let mut rules = RuleSet::builtin()?;
        let Some(dir) = dir else { return Ok(rules) };
        if !dir.is_dir() {
            return Err(RuleError::Read {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            });
        }
        check_rule_dir(dir)?;
        if let Some((text, origin)) = read_optional(&dir.join(RELAY_VECTORS_FILE))? {
            rules.relay_vectors = parse_vectors(&text, &origin)?;
        }
        if let Some((text, origin)) = read_optional(&dir.join(FINGERPRINTS_FILE))? {
            rules.fingerprints = parse_fingerprints(&text, &origin)?;
        }
        if let Some((text, origin)) = read_optional(&dir.join(SEVERITIES_FILE))? {
            rules.severities = parse_severities(&text, &origin)?;
        }
        Ok(rules)
    }

    /// The severity of a finding kind under these rules.
    pub fn severity(&self, kind: FindingKind) -> Severity {
        self.severities
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_severity())
    }

    /// The MTA identified by the first matching fingerprint, or `other`.
    pub fn identify_mta(&self, banner: &str, ehlo_lines: &[String]) -> &str {
        self.fingerprints
            .iter()
            .find(|f| f.matches(banner, ehlo_lines))
            .map_or("other", |f| f.mta.as_str())
    }
}

/// Refuses YAML files in a `--rules` directory that no part of a sweep reads.
fn check_rule_dir(dir: &Path) -> Result<(), RuleError> {
    let entries = std::fs::read_dir(dir).map_err(|source| RuleError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| RuleError::Read {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if !yaml || OVERRIDABLE_FILES.contains(&name) {
            continue;
        }
        let read = OVERRIDABLE_FILES.join(", ");
        let why = match NOT_OVERRIDABLE_FILES.iter().find(|(file, _)| *file == name) {
            Some((_, why)) => {
                format!("{why} (--rules replaces {read}); remove it from the directory")
            }
            None => format!("--rules replaces only {read}"),
        };
        return Err(RuleError::NotRead { path, why });
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<(String, String)>, RuleError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some((text, path.display().to_string()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RuleError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, RuleError> {
    serde_saphyr::from_str(text).map_err(|e| RuleError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

fn invalid(origin: &str, entry: impl Into<String>, message: impl Into<String>) -> RuleError {
    RuleError::Invalid {
        origin: origin.to_string(),
        entry: entry.into(),
        message: message.into(),
    }
}

fn parse_vectors(text: &str, origin: &str) -> Result<Vec<RelayVector>, RuleError> {
    let file: VectorFile = parse_yaml(text, origin)?;
    if file.vectors.is_empty() {
        return Err(invalid(origin, "vectors", "no relay vectors defined"));
    }
    let mut seen = std::collections::HashSet::new();
    for v in &file.vectors {
        if v.id.is_empty() || !v.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid(origin, &v.id, "id must be non-empty [A-Za-z0-9-]"));
        }
        if !seen.insert(v.id.clone()) {
            return Err(invalid(origin, &v.id, "duplicate id"));
        }
        for (field, template) in [("mail_from", &v.mail_from), ("rcpt_to", &v.rcpt_to)] {
            check_template(template)
                .map_err(|m| invalid(origin, &v.id, format!("{field}: {m}")))?;
        }
    }
    Ok(file.vectors)
}

/// Checks that a template is one SMTP path argument with known placeholders only.
fn check_template(template: &str) -> Result<(), String> {
    if !(template.starts_with('<') && template.ends_with('>')) {
        return Err(format!("{template:?} must be enclosed in <>"));
    }
    // CR, LF or NUL would let a rule file smuggle extra SMTP commands (such as DATA).
    if template.chars().any(char::is_control) {
        return Err("control characters are not allowed".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {template:?}"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn parse_fingerprints(text: &str, origin: &str) -> Result<Vec<Fingerprint>, RuleError> {
    let file: FingerprintFile = parse_yaml(text, origin)?;
    let compile = |index: usize, pattern: Option<String>| -> Result<Option<Regex>, RuleError> {
        pattern
            .map(|p| {
                Regex::new(&p)
                    .map_err(|e| invalid(origin, format!("#{}", index + 1), e.to_string()))
            })
            .transpose()
    };
    file.fingerprints
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            if entry.banner.is_none() && entry.ehlo.is_none() {
                return Err(invalid(
                    origin,
                    format!("#{}", i + 1),
                    "needs a banner or ehlo pattern",
                ));
            }
            if entry.mta.is_empty() {
                return Err(invalid(
                    origin,
                    format!("#{}", i + 1),
                    "mta must not be empty",
                ));
            }
            Ok(Fingerprint {
                mta: entry.mta,
                banner: compile(i, entry.banner)?,
                ehlo: compile(i, entry.ehlo)?,
            })
        })
        .collect()
}

fn parse_severities(
    text: &str,
    origin: &str,
) -> Result<BTreeMap<FindingKind, Severity>, RuleError> {
    let file: SeverityFile = parse_yaml(text, origin)?;
    file.severities
        .into_iter()
        .map(|(kind, severity)| {
            let kind = kind
                .parse::<FindingKind>()
                .map_err(|e| invalid(origin, kind.clone(), e.to_string()))?;
            Ok((kind, severity))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load_and_cover_nmaps_sixteen_vectors() {
        let rules = RuleSet::builtin().expect("built-in rules are valid");
        let nmap = rules
            .relay_vectors
            .iter()
            .filter(|v| v.source.starts_with("nmap "))
            .count();
        assert_eq!(nmap, 16);
        assert!(rules.relay_vectors.len() >= 19);
        assert_eq!(rules.severity(FindingKind::OpenRelay), Severity::Critical);
    }

    #[test]
    fn severities_yaml_states_every_kinds_default() {
        let shipped = parse_severities(DEFAULT_SEVERITIES, "rules/severities.yaml").unwrap();
        for kind in FindingKind::ALL {
            assert_eq!(
                shipped.get(&kind),
                Some(&kind.default_severity()),
                "rules/severities.yaml misses or misstates {kind}"
            );
        }
        assert_eq!(shipped.len(), FindingKind::ALL.len());
    }

    #[test]
    fn fingerprints_identify_common_banners() {
        let rules = RuleSet::builtin().unwrap();
        let id = |banner: &str| rules.identify_mta(banner, &[]).to_string();
        assert_eq!(
            id("220 mx.example.edu ESMTP Postfix (Debian/GNU)"),
            "postfix"
        );
        assert_eq!(id("220 mx ESMTP Exim 4.96 Mon, 1 Jan 2024"), "exim");
        assert_eq!(id("220 mx ESMTP Sendmail 8.17.1/8.17.1; Mon"), "sendmail");
        assert_eq!(id("220 mx ESMTP OpenSMTPD"), "opensmtpd");
        assert_eq!(
            id("220 mx Microsoft ESMTP MAIL Service ready at Mon"),
            "exchange"
        );
        assert_eq!(id("220 mx ESMTP"), "other");
    }

    #[test]
    fn broken_rule_files_are_rejected_with_their_entry() {
        let err = parse_vectors(
            "vectors: [{id: a, mail_from: '<x>', rcpt_to: '<{nope}>'}]",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown placeholder {nope}"), "{err}");
        let err = parse_vectors("vectors: [{id: a, mail_from: '<x>', rcpt_to: 'y'}]", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("enclosed in <>"), "{err}");
        let err = parse_vectors(
            "vectors: [{id: a, mail_from: \"<x>\\r\\nDATA\", rcpt_to: '<y>'}]",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("enclosed in <>") || err.contains("control"),
            "{err}"
        );
        let err = parse_vectors("vectors: [{id: a, mail_from: '<x>', rcpt_to: '<y>'}, {id: a, mail_from: '<x>', rcpt_to: '<y>'}]", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate id"), "{err}");
        assert!(parse_vectors("vectors: [", "t").is_err());
        let err = parse_fingerprints("fingerprints: [{mta: x, banner: '('}]", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("#1"), "{err}");
        let err = parse_severities("severities: {open-relay: dire}", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t"), "{err}");
        let err = parse_severities("severities: {openrelay: high}", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown finding kind"), "{err}");
    }

    #[test]
    fn rules_dir_overrides_only_the_files_it_has() {
        let dir = std::env::temp_dir().join(format!("relayguard-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(SEVERITIES_FILE),
            "severities:\n  no-starttls: high\n",
        )
        .unwrap();
        let rules = RuleSet::load(Some(&dir)).unwrap();
        assert_eq!(rules.severity(FindingKind::NoStarttls), Severity::High);
        assert_eq!(rules.severity(FindingKind::OpenRelay), Severity::Critical);
        assert!(rules.relay_vectors.len() >= 19);
        // A file the sweep would not read is refused, naming the files it does read.
        for (name, says) in [
            ("severity.yaml", "replaces only"),
            ("remediation.yaml", "registry's notify"),
        ] {
            std::fs::write(dir.join(name), "x: 1\n").unwrap();
            let err = RuleSet::load(Some(&dir)).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(says), "{err}");
            assert!(err.contains(GENERIC_PTR_FILE), "{err}");
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(RuleSet::load(Some(&dir)).is_err());
    }
}
