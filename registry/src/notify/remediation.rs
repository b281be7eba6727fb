//! The fix for each MTA, in English and Japanese, from `rules/remediation.yaml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Lang;
use crate::error::{Error, Result};

/// The embedded rule file.
pub const EMBEDDED: &str = include_str!("../../../rules/remediation.yaml");

/// The entry for hosts that should not run an MTA at all: how to stop it at boot per OS.
pub const NO_MTA_WANTED: &str = "no-mta-wanted";

/// The entry used for an MTA without its own text.
pub const OTHER: &str = "other";

/// Keys the file must define.
pub const REQUIRED: [&str; 7] = [
    "postfix",
    "sendmail",
    "qmail",
    "exim",
    "opensmtpd",
    OTHER,
    NO_MTA_WANTED,
];

/// One fix: a display name and the text in each language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remedy {
    /// What the fix is for, e.g. `Postfix`.
    pub name: String,
    /// English text.
    pub en: String,
    /// Japanese text.
    pub ja: String,
}

impl Remedy {
    /// The text in `lang`, without trailing blank lines.
    pub fn text(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => self.en.trim_end(),
            Lang::Ja => self.ja.trim_end(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemediationFile {
    remediation: BTreeMap<String, Remedy>,
}

/// Every fix, keyed by MTA id (as in `rules/fingerprints.yaml`).
#[derive(Debug, Clone)]
pub struct Remediation {
    by_key: BTreeMap<String, Remedy>,
}

impl Remediation {
    /// Parses and checks a remediation file: every [`REQUIRED`] key, non-empty texts.
    pub fn parse(text: &str) -> Result<Remediation> {
        let file: RemediationFile = serde_saphyr::from_str(text)
            .map_err(|e| Error::Invalid(format!("rules/remediation.yaml: {e}")))?;
        for key in REQUIRED {
            if !file.remediation.contains_key(key) {
                return Err(Error::Invalid(format!(
                    "rules/remediation.yaml: missing entry {key:?}"
                )));
            }
        }
        for (key, r) in &file.remediation {
            if r.name.trim().is_empty() || r.en.trim().is_empty() || r.ja.trim().is_empty() {
                return Err(Error::Invalid(format!(
                    "rules/remediation.yaml: entry {key:?} needs a name and both en and ja texts"
                )));
            }
        }
        Ok(Remediation {
            by_key: file.remediation,
        })
    }

    /// The file built into the binary.
    pub fn embedded() -> Result<Remediation> {
        Remediation::parse(EMBEDDED)
    }

    /// The fix for `mta` (case-insensitive), else the generic one.
    pub fn for_mta(&self, mta: &str) -> &Remedy {
        let key = mta.trim().to_ascii_lowercase();
        self.by_key
            .get(key.as_str())
            .filter(|_| key != NO_MTA_WANTED)
            .unwrap_or_else(|| &self.by_key[OTHER])
    }

    /// How to stop an MTA that should not run.
    pub fn no_mta_wanted(&self) -> &Remedy {
        &self.by_key[NO_MTA_WANTED]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_has_every_mta_in_both_languages() {
        let r = Remediation::embedded().unwrap();
        assert!(r.for_mta("postfix").en.contains("smtpd_relay_restrictions"));
        assert!(r.for_mta("Postfix").ja.contains("local_recipient_maps"));
        assert!(r.for_mta("sendmail").en.contains("promiscuous_relay"));
        assert!(r.for_mta("qmail").en.contains("rcpthosts"));
        assert!(r.for_mta("qmail").en.contains("tcp.smtp"));
        assert!(r.for_mta("exim").en.contains("relay_from_hosts"));
        assert!(r.for_mta("exim").en.contains("verify = recipient"));
        assert!(r.for_mta("opensmtpd").en.contains("match"));
        assert_eq!(r.for_mta("exchange").name, r.for_mta("other").name);
        assert_eq!(r.for_mta(NO_MTA_WANTED).name, r.for_mta(OTHER).name);
        let stop = r.no_mta_wanted();
        for needle in [
            "systemctl mask",
            "update-rc.d",
            "sendmail_enable=\"NONE\"",
            "relayguard-agent",
        ] {
            assert!(stop.en.contains(needle), "{needle}");
            assert!(stop.ja.contains(needle), "{needle}");
        }
        assert!(stop.ja.contains("停止"));
    }

    #[test]
    fn a_file_without_a_required_entry_is_refused() {
        let err =
            Remediation::parse("remediation:\n  postfix: {name: P, en: a, ja: b}\n").unwrap_err();
        assert!(err.to_string().contains("missing entry"), "{err}");
    }
}
