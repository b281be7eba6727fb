//! `relayguard notify`: one e-mail digest per responsible address, with the evidence and the fix
//! for the host's MTA, never twice for the same news.
//!
//! * [`routing`] groups findings by contact (registered admin, else network owner, else the
//!   fallback security team) and decides what is news against [`sent`].
//! * [`evidence`] picks the lines of evidence worth quoting from core's typed evidence.
//! * [`render`] writes the text and HTML (maud) parts, with the words of [`labels`] in English
//!   or Japanese.
//! * [`remediation`] holds the fix per MTA from `rules/remediation.yaml`.
//! * [`mail`] builds MIME messages with lettre and delivers them over SMTP or into .eml files.
//! * [`sent`] records each notice and the findings (with their status and severity) it carried.

pub mod evidence;
pub mod labels;
pub mod mail;
pub mod remediation;
pub mod render;
pub mod routing;
pub mod sent;

use std::path::PathBuf;

use lettre::message::Mailbox;
use relayguard_core::scan::HostResult;

use crate::error::{Error, Result};
use crate::store::{FindingFilter, FindingStatus, Store};
use remediation::Remediation;
use routing::{Contact, Digest, Via};

/// Language of the digests: each contact's own when the registry knows it, else the run's.
pub use crate::model::Lang;

/// How the messages leave.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Write .eml files into this directory and record nothing.
    DryRun(PathBuf),
    /// Send over SMTP and record what was sent.
    Smtp(mail::SmtpOptions),
}

/// Everything a notify run needs.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// Where the messages go.
    pub delivery: Delivery,
    /// Sender address (`Name <addr>` or a bare address).
    pub from: String,
    /// Language.
    pub lang: Lang,
    /// The security team's address, for findings nobody else answers for.
    pub fallback: Option<String>,
    /// Days after which still-open findings are reported again; 0 disables reminders.
    pub reminder_days: u32,
    /// The time of the run (Unix seconds).
    pub now: i64,
}

/// One digest handled by a run.
#[derive(Debug, Clone)]
pub struct DigestOutcome {
    /// Recipient address.
    pub admin: String,
    /// Subject line.
    pub subject: String,
    /// Message-ID header value.
    pub message_id: String,
    /// (new or changed, resolved, still open) findings.
    pub counts: (usize, usize, usize),
    /// The .eml file (dry run) or the server's reply (SMTP).
    pub result: std::result::Result<String, String>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct NotifyOutcome {
    /// Every digest, in recipient order.
    pub digests: Vec<DigestOutcome>,
    /// Whether the messages were written to files rather than sent.
    pub dry_run: bool,
}

impl NotifyOutcome {
    /// How many digests could not be delivered.
    pub fn failures(&self) -> usize {
        self.digests.iter().filter(|d| d.result.is_err()).count()
    }

    /// One line per digest for the operator (`sent ADMIN: …`, `wrote ADMIN: …` or
    /// `FAILED ADMIN: why`), or `nothing new to notify`.
    pub fn lines(&self) -> Vec<String> {
        if self.digests.is_empty() {
            return vec!["nothing new to notify".into()];
        }
        self.digests
            .iter()
            .map(|d| {
                let (news, resolved, open) = d.counts;
                match &d.result {
                    Ok(r) => format!(
                        "{} {}: {news} new/changed, {resolved} resolved, {open} open ({})",
                        if self.dry_run { "wrote" } else { "sent" },
                        d.admin,
                        mail::one_line(r)
                    ),
                    Err(e) => format!("FAILED {}: {}", d.admin, mail::one_line(e)),
                }
            })
            .collect()
    }
}

/// Parses `--from`: `Name <addr>` or `addr`, validated like registry addresses.
pub(crate) fn parse_from(from: &str) -> Result<Mailbox> {
    let from = from.trim();
    match from.rsplit_once('<') {
        Some((name, rest)) => {
            let addr = rest.strip_suffix('>').ok_or_else(|| {
                crate::Error::Invalid(format!("invalid --from {from:?}: missing '>'"))
            })?;
            mail::mailbox(name.trim().trim_matches('"'), addr)
        }
        None => mail::mailbox("", from),
    }
}

/// Plans, renders and delivers the digests, each in its contact's language when the registry
/// knows it (the host's `admin_lang`, the network owner's `owner_lang`), else in `opts.lang`.
/// A delivery failure for one recipient does not stop the others; it is reported in the outcome
/// and recorded as a failure only, so the next run tries again.
pub async fn notify(store: &Store, opts: &NotifyOptions) -> Result<NotifyOutcome> {
    let remediation = Remediation::embedded()?;
    let from = parse_from(&opts.from)?;
    let fallback = opts
        .fallback
        .as_deref()
        .map(|f| -> Result<Contact> {
            let mb = parse_from(f).map_err(|e| Error::Invalid(format!("--fallback: {e}")))?;
            Ok(Contact {
                email: mb.email.to_string(),
                name: mb.name.unwrap_or_default(),
                via: Via::Fallback,
                lang: None,
            })
        })
        .transpose()?;
    store.refresh_registrations().await?;
    let findings = store.list_findings(&FindingFilter::default()).await?;
    let hosts = store.list_hosts().await?;
    let nets = store.list_networks().await?;
    let last = sent::last_notices(store).await?;
    let reminder = (opts.reminder_days > 0).then(|| i64::from(opts.reminder_days) * 86_400);
    let mut digests = routing::plan(
        &findings,
        &hosts,
        &nets,
        &last,
        fallback.as_ref(),
        opts.now,
        reminder,
    )?;
    for d in &mut digests {
        for s in &mut d.hosts {
            s.mta = latest_mta(store, &s.address, &s.items).await?;
        }
    }

    let transport = match &opts.delivery {
        Delivery::Smtp(o) => Some(mail::smtp_transport(o)?),
        Delivery::DryRun(_) => None,
    };
    let mut outcome = NotifyOutcome {
        digests: Vec::new(),
        dry_run: matches!(opts.delivery, Delivery::DryRun(_)),
    };
    for (index, d) in digests.iter().enumerate() {
        outcome.digests.push(
            deliver(
                store,
                opts,
                &remediation,
                &from,
                transport.as_ref(),
                index,
                d,
            )
            .await?,
        );
    }
    Ok(outcome)
}

async fn deliver(
    store: &Store,
    opts: &NotifyOptions,
    remediation: &Remediation,
    from: &Mailbox,
    transport: Option<&lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    index: usize,
    d: &Digest,
) -> Result<DigestOutcome> {
    let lang = d.contact.lang.unwrap_or(opts.lang);
    let subject = labels::subject(d, lang);
    let message_id = mail::new_message_id(from, opts.now)?;
    let mut out = DigestOutcome {
        admin: d.contact.email.clone(),
        subject: subject.clone(),
        message_id: message_id.clone(),
        counts: d.counts(),
        result: Err(String::new()),
    };
    let to = match mail::mailbox(&d.contact.name, &d.contact.email) {
        Ok(to) => to,
        Err(e) => {
            out.result = Err(e.to_string());
            return Ok(out);
        }
    };
    let message = mail::build(
        from,
        &to,
        &subject,
        &message_id,
        render::render_text(d, lang, remediation),
        render::render_html(d, lang, remediation),
    )?;
    match (&opts.delivery, transport) {
        (Delivery::DryRun(dir), _) => {
            let path = mail::write_eml(dir, index + 1, &d.contact.email, &message)?;
            out.result = Ok(path.display().to_string());
        }
        (Delivery::Smtp(_), Some(t)) => match mail::send(t, message).await {
            Ok(reply) => {
                let items: Vec<(i64, FindingStatus, relayguard_core::Severity)> = d
                    .items()
                    .map(|i| (i.finding.id, i.finding.status, i.finding.severity))
                    .collect();
                if let Err(e) =
                    sent::record(store, &d.contact.email, &message_id, opts.now, &items).await
                {
                    tracing::error!(
                        admin = %d.contact.email,
                        "sent {message_id} but could not record it (it may be sent again): {e}"
                    );
                    return Err(e);
                }
                out.result = Ok(reply);
            }
            Err(e) => {
                tracing::warn!(admin = %d.contact.email, "delivery failed: {e}");
                if let Err(db) =
                    sent::record_failure(store, &d.contact.email, opts.now, &e.to_string()).await
                {
                    tracing::error!(admin = %d.contact.email, "could not record the failure: {db}");
                }
                out.result = Err(e.to_string());
            }
        },
        (Delivery::Smtp(_), None) => unreachable!("an SMTP delivery always has a transport"),
    }
    Ok(out)
}

/// The MTA the latest sweep identified on `address` (`smtp.mta` of the newest observation),
/// preferring the ports the findings are about.
async fn latest_mta(
    store: &Store,
    address: &str,
    items: &[routing::Item],
) -> Result<Option<String>> {
    // A stored result that does not read back (written by another version) is skipped rather
    // than guessed at.
    let observations: Vec<HostResult> = store
        .observations_for(address, 50)
        .await?
        .into_iter()
        .filter_map(|o| o.result)
        .collect();
    let mta_of = |r: &HostResult| {
        r.smtp
            .as_ref()
            .map(|s| s.mta.as_str())
            .filter(|m| !m.trim().is_empty())
            .map(|m| mail::one_line(m).chars().take(64).collect::<String>())
    };
    let ports: Vec<i64> = items.iter().map(|i| i.finding.port).collect();
    let on_port = observations
        .iter()
        .filter(|r| ports.contains(&i64::from(r.port)))
        .find_map(mta_of);
    Ok(on_port.or_else(|| observations.iter().find_map(mta_of)))
}
