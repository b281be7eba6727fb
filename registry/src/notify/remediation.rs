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

/// What to do about a full queue or a bounce burst (`mail-queue-backlog`, `bounce-burst`) on
/// `mta` (as the agent names it: `postfix`, `exim`, `opensmtpd`, `sendmail`): its name and the
/// commands that show the queue, find the bounces, hold or remove them, and a word on the usual
/// cause. Another MTA gets the general advice.
pub fn queue_health(mta: &str, lang: Lang) -> (&'static str, &'static str) {
    let (name, en, ja) = match mta.trim().to_ascii_lowercase().as_str() {
        "postfix" => ("Postfix", QUEUE_POSTFIX_EN, QUEUE_POSTFIX_JA),
        "exim" => ("Exim", QUEUE_EXIM_EN, QUEUE_EXIM_JA),
        "opensmtpd" => ("OpenSMTPD", QUEUE_OPENSMTPD_EN, QUEUE_OPENSMTPD_JA),
        "sendmail" => ("Sendmail", QUEUE_SENDMAIL_EN, QUEUE_SENDMAIL_JA),
        _ => ("mail server", QUEUE_OTHER_EN, QUEUE_OTHER_JA),
    };
    match lang {
        Lang::En => (name, en),
        Lang::Ja => (name, ja),
    }
}

const QUEUE_POSTFIX_EN: &str = "\
Look at the queue: postqueue -p | tail -n 1; qshape deferred (where the mail waits)
List the bounces: mailq | awk '$7 == \"MAILER-DAEMON\" {print $1}' | tr -d '*!'
Hold them while you look: ... | postsuper -h -   (release: postsuper -H ALL)
Remove them once you know they are junk: ... | postsuper -d -
Why they are deferred: postcat -q QUEUE_ID; the mail log (/var/log/mail.log).
Bounces for mail that was never deliverable are backscatter: reject unknown recipients during
the SMTP dialogue (smtpd_reject_unlisted_recipient = yes, local_recipient_maps, relay_recipient_maps)
instead of accepting and bouncing later.";

const QUEUE_POSTFIX_JA: &str = "\
キューの確認: postqueue -p | tail -n 1、qshape deferred（どこで滞留しているか）
バウンスの一覧: mailq | awk '$7 == \"MAILER-DAEMON\" {print $1}' | tr -d '*!'
調査中は保留: ... | postsuper -h -（解除: postsuper -H ALL）
不要と確認できたら削除: ... | postsuper -d -
遅延の理由: postcat -q キューID、メールログ（/var/log/mail.log）。
届くはずのないメールのバウンスはバックスキャッタです。受信後にバウンスするのではなく、SMTP の対話中に
存在しない宛先を拒否してください（smtpd_reject_unlisted_recipient = yes、local_recipient_maps、
relay_recipient_maps）。";

const QUEUE_EXIM_EN: &str = "\
Look at the queue: exim -bpc (count); exim -bp | exiqsumm (per domain)
List the bounces: exiqgrep -f '^<>$' -i; the frozen ones: exiqgrep -z -i
Remove them once you know they are junk: exiqgrep -f '^<>$' -i | xargs exim -Mrm
Thaw and retry the rest: exim -Mt ID; exim -qff
Why they are deferred: exim -Mvl ID; the main log (/var/log/exim4/mainlog).
Bounces for mail that was never deliverable are backscatter: check recipients in the RCPT ACL
(verify = recipient) instead of accepting and bouncing later.";

const QUEUE_EXIM_JA: &str = "\
キューの確認: exim -bpc（件数）、exim -bp | exiqsumm（ドメイン別）
バウンスの一覧: exiqgrep -f '^<>$' -i、凍結されたもの: exiqgrep -z -i
不要と確認できたら削除: exiqgrep -f '^<>$' -i | xargs exim -Mrm
残りは解凍して再送: exim -Mt ID、exim -qff
遅延の理由: exim -Mvl ID、メインログ（/var/log/exim4/mainlog）。
届くはずのないメールのバウンスはバックスキャッタです。受信後にバウンスするのではなく、RCPT ACL で
宛先を確認してください（verify = recipient）。";

const QUEUE_OPENSMTPD_EN: &str = "\
Look at the queue: smtpctl show queue (one line per recipient); smtpctl show stats
The bounces are the lines whose sender field is \"@\" (the null sender).
Hold delivery while you look: smtpctl pause mta   (resume: smtpctl resume mta)
Remove junk by message or envelope id: smtpctl remove ID   (or smtpctl remove all)
Retry the rest now: smtpctl schedule all
Why they are deferred: the last field of smtpctl show queue; the mail log.
Bounces for mail that was never deliverable are backscatter: accept only recipients that exist
(match ... rcpt-to <table>, a userbase or virtual table) instead of accepting and bouncing later.";

const QUEUE_OPENSMTPD_JA: &str = "\
キューの確認: smtpctl show queue（宛先ごとに 1 行）、smtpctl show stats
送信者欄が \"@\"（空の送信者）の行がバウンスです。
調査中は配送を止める: smtpctl pause mta（再開: smtpctl resume mta）
不要なものをメッセージ ID か封筒 ID で削除: smtpctl remove ID（全部なら smtpctl remove all）
残りをすぐ再送: smtpctl schedule all
遅延の理由: smtpctl show queue の最後の欄、メールログ。
届くはずのないメールのバウンスはバックスキャッタです。受信後にバウンスするのではなく、存在する宛先だけを
受け付けてください（match ... rcpt-to <table>、userbase や virtual のテーブル）。";

const QUEUE_SENDMAIL_EN: &str = "\
Look at the queue: mailq | tail -n 1 (Total requests); mailq -v
The bounces are the messages from MAILER-DAEMON or <>: mailq | grep -E ' (MAILER-DAEMON|<>)$'
Quarantine one while you look: sendmail -qIID -Q\"held by the admin\"   (list: mailq -qQ; release: sendmail -qQ -qIID -Q)
Remove junk: stop sendmail, delete /var/spool/mqueue/qfID and dfID, start it again.
Retry the rest now: sendmail -q -v
Bounces for mail that was never deliverable are backscatter: reject unknown users at RCPT time
(the access and virtusertable maps, FEATURE(`ldap_routing') with bounce) instead of bouncing later.";

const QUEUE_SENDMAIL_JA: &str = "\
キューの確認: mailq | tail -n 1（Total requests）、mailq -v
MAILER-DAEMON または <> からのメッセージがバウンスです: mailq | grep -E ' (MAILER-DAEMON|<>)$'
調査中は隔離: sendmail -qIID -Q\"held by the admin\"（一覧: mailq -qQ、解除: sendmail -qQ -qIID -Q）
不要なものの削除: sendmail を止め、/var/spool/mqueue/qfID と dfID を消してから起動し直す。
残りをすぐ再送: sendmail -q -v
届くはずのないメールのバウンスはバックスキャッタです。後でバウンスするのではなく、RCPT の時点で
存在しない利用者を拒否してください（access、virtusertable マップ、FEATURE(`ldap_routing') の bounce）。";

const QUEUE_OTHER_EN: &str = "\
Look at the queue with the mail server's own listing command, find the messages from the null
sender (<>, MAILER-DAEMON) and where they are going, hold or remove the junk, and fix the cause:
usually mail accepted for recipients that do not exist (backscatter) or a mail loop.";

const QUEUE_OTHER_JA: &str = "\
メールサーバのキュー一覧コマンドでキューを確認し、空の送信者（<>、MAILER-DAEMON）からのメッセージと
その宛先を調べ、不要なものは保留・削除したうえで原因を直してください。多くの場合、存在しない宛先への
メールを受け付けていること（バックスキャッタ）かメールのループが原因です。";

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
    fn queue_health_advice_names_each_mtas_commands() {
        for (mta, needles) in [
            (
                "postfix",
                &["postqueue -p", "postsuper -d -", "MAILER-DAEMON"][..],
            ),
            (
                "Exim",
                &["exim -bpc", "exiqgrep -f '^<>$'", "exim -Mrm"][..],
            ),
            ("opensmtpd", &["smtpctl show queue", "smtpctl remove"][..]),
            ("sendmail", &["mailq", "MAILER-DAEMON", "sendmail -q"][..]),
        ] {
            for lang in [Lang::En, Lang::Ja] {
                let (_, text) = queue_health(mta, lang);
                for n in needles {
                    assert!(text.contains(n), "{mta} {lang:?}: {n}");
                }
            }
        }
        assert!(queue_health("postfix", Lang::Ja).1.contains("バウンス"));
        assert_eq!(queue_health("exchange", Lang::En).0, "mail server");
    }

    #[test]
    fn a_file_without_a_required_entry_is_refused() {
        let err =
            Remediation::parse("remediation:\n  postfix: {name: P, en: a, ja: b}\n").unwrap_err();
        assert!(err.to_string().contains("missing entry"), "{err}");
    }
}
