//! Installed MTAs: distinctive binaries and configuration directories.
//!
//! `/usr/sbin/sendmail` is deliberately not a sign of Sendmail: every MTA (and dma, nullmailer)
//! installs a compatibility binary under that name.

use relayguard_core::agent_report::{FactKind, Mta};

use super::Detection;
use crate::root::Root;

/// Files that prove an MTA is installed.
const MARKERS: &[(Mta, &[&str])] = &[
    (
        Mta::Sendmail,
        &[
            "/usr/lib/sm.bin/sendmail",
            "/usr/sbin/sendmail.sendmail",
            "/usr/libexec/sendmail/sendmail",
            "/etc/mail/sendmail.cf",
        ],
    ),
    (
        Mta::Postfix,
        &[
            "/usr/sbin/postfix",
            "/usr/lib/postfix/sbin/master",
            "/usr/libexec/postfix/master",
            "/usr/local/sbin/postfix",
            "/etc/postfix/main.cf",
            "/usr/local/etc/postfix/main.cf",
        ],
    ),
    (
        Mta::Exim,
        &[
            "/usr/sbin/exim4",
            "/usr/sbin/exim",
            "/usr/local/sbin/exim",
            "/etc/exim4",
            "/etc/exim",
        ],
    ),
    (
        Mta::Qmail,
        &["/var/qmail/bin/qmail-send", "/var/qmail/bin/qmail-smtpd"],
    ),
    (
        Mta::Opensmtpd,
        &[
            "/usr/sbin/smtpctl",
            "/usr/local/sbin/smtpctl",
            "/etc/smtpd.conf",
            "/etc/smtpd/smtpd.conf",
            "/usr/local/etc/mail/smtpd.conf",
        ],
    ),
    (
        crate::mta::COURIER,
        &[
            "/usr/sbin/courieresmtpd",
            "/usr/lib/courier/courier/courierd",
            "/etc/courier/esmtpd",
        ],
    ),
    (
        Mta::Dma,
        &[
            "/usr/libexec/dma",
            "/usr/sbin/dma",
            "/usr/lib/dma/dma-mbox-create",
        ],
    ),
    (
        Mta::Nullmailer,
        &["/usr/sbin/nullmailer-send", "/etc/nullmailer"],
    ),
];

/// Runs the installed-files detector.
pub fn detect(root: &Root) -> Detection {
    let mut d = Detection::default();
    for (mta, paths) in MARKERS {
        let found: Vec<&str> = paths.iter().copied().filter(|p| root.exists(p)).collect();
        if let Some(first) = found.first() {
            let detail = if mta.listens() {
                format!("found {}", found.join(", "))
            } else {
                format!(
                    "found {} (send-only MTA, does not listen)",
                    found.join(", ")
                )
            };
            d.fact(*mta, FactKind::Installed, None, *first, detail);
        }
    }
    d
}
