//! `relayguard notify`: one e-mail digest per responsible address, with the evidence and the fix
//! for the host's MTA, never twice for the same news.
//!
//! * [`digest`] groups findings by contact (registered admin, else network owner, else the
//!   `--fallback` security team), decides what is news against [`sent`], and renders the text
//!   and HTML parts in English or Japanese.
//! * [`remediation`] holds the fix per MTA from `rules/remediation.yaml`.
//! * [`mail`] builds MIME messages with lettre and delivers them over SMTP or into .eml files.
//! * [`sent`] records each notice and the findings (with their status and severity) it carried.

pub mod digest;
pub mod mail;
pub mod remediation;
pub mod sent;

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use lettre::message::Mailbox;

use crate::store::{FindingFilter, FindingStatus, Store};
use digest::{Contact, Digest, Via};
use remediation::Remediation;

/// Language of the digests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Japanese.
    Ja,
}

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
}

impl NotifyOutcome {
    /// How many digests could not be delivered.
    pub fn failures(&self) -> usize {
        self.digests.iter().filter(|d| d.result.is_err()).count()
    }
}

/// Parses `--from`: `Name <addr>` or `addr`, validated like registry addresses.
fn parse_from(from: &str) -> crate::error::Result<Mailbox> {
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

/// Plans, renders and delivers the digests. A delivery failure for one recipient does not stop
/// the others; it is reported in the outcome and nothing is recorded for it, so the next run
/// tries again.
pub async fn notify(store: &Store, opts: &NotifyOptions) -> anyhow::Result<NotifyOutcome> {
    let remediation = Remediation::embedded()?;
    let from = parse_from(&opts.from)?;
    let fallback = opts
        .fallback
        .as_deref()
        .map(|f| -> anyhow::Result<Contact> {
            let mb = parse_from(f).context("--fallback")?;
            Ok(Contact {
                email: mb.email.to_string(),
                name: mb.name.unwrap_or_default(),
                via: Via::Fallback,
            })
        })
        .transpose()?;
    store.refresh_registrations().await?;
    let findings = store.list_findings(&FindingFilter::default()).await?;
    let hosts = store.list_hosts().await?;
    let nets = store.list_networks().await?;
    let last = sent::last_notices(store).await?;
    let reminder = (opts.reminder_days > 0).then(|| i64::from(opts.reminder_days) * 86_400);
    let mut digests = digest::plan(
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
    let mut outcome = NotifyOutcome::default();
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
) -> anyhow::Result<DigestOutcome> {
    let subject = digest::subject(d, opts.lang);
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
        digest::render_text(d, opts.lang, remediation),
        digest::render_html(d, opts.lang, remediation),
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
                sent::record(store, &d.contact.email, &message_id, opts.now, &items)
                    .await
                    .with_context(|| {
                        format!(
                            "sent {message_id} to {} but could not record it (it may be sent again)",
                            d.contact.email
                        )
                    })?;
                out.result = Ok(reply);
            }
            Err(e) => {
                tracing::warn!(admin = %d.contact.email, "delivery failed: {e:#}");
                out.result = Err(format!("{e:#}"));
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
    items: &[digest::Item],
) -> crate::error::Result<Option<String>> {
    let observations = store.observations_for(address, 50).await?;
    let mta_of = |v: &serde_json::Value| {
        v.get("smtp")
            .and_then(|s| s.get("mta"))
            .and_then(|m| m.as_str())
            .filter(|m| !m.trim().is_empty())
            .map(|m| mail::one_line(m).chars().take(64).collect::<String>())
    };
    let ports: Vec<i64> = items.iter().map(|i| i.finding.port).collect();
    let on_port = observations.iter().find_map(|(_, v)| {
        let port = v.get("port").and_then(|p| p.as_i64())?;
        if ports.contains(&port) {
            mta_of(v)
        } else {
            None
        }
    });
    Ok(on_port.or_else(|| observations.iter().find_map(|(_, v)| mta_of(v))))
}

/// The `notify` subcommand: turns the arguments into options, runs, prints one line per digest.
pub async fn run_cli(
    store: &Store,
    a: crate::cli::NotifyArgs,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let delivery = if a.dry_run {
        Delivery::DryRun(a.out.unwrap_or_else(|| PathBuf::from("notify-out")))
    } else {
        let url = a
            .smtp
            .context("give --smtp smtp://HOST:PORT to send, or --dry-run to write .eml files")?;
        let password = match &a.smtp_password_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            None => None,
        };
        let ca_pem = match &a.smtp_ca {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        Delivery::Smtp(mail::SmtpOptions {
            url,
            starttls: a.starttls,
            user: a.smtp_user,
            password,
            ca_pem,
        })
    };
    let from = match (a.from, a.dry_run) {
        (Some(f), _) => f,
        (None, true) => "relayguard <relayguard@relayguard.invalid>".to_string(),
        (None, false) => anyhow::bail!("give --from ADDR: the sender of the notices"),
    };
    let opts = NotifyOptions {
        delivery,
        from,
        lang: a.lang,
        fallback: a.fallback,
        reminder_days: a.reminder_days,
        now: crate::model::now_unix(),
    };
    let outcome = notify(store, &opts).await?;
    if outcome.digests.is_empty() {
        writeln!(out, "nothing new to notify")?;
    }
    for d in &outcome.digests {
        let (news, resolved, open) = d.counts;
        match &d.result {
            Ok(r) => writeln!(
                out,
                "{} {}: {news} new/changed, {resolved} resolved, {open} open ({})",
                if a.dry_run { "wrote" } else { "sent" },
                d.admin,
                mail::one_line(r)
            )?,
            Err(e) => writeln!(out, "FAILED {}: {}", d.admin, mail::one_line(e))?,
        }
    }
    if outcome.failures() > 0 {
        anyhow::bail!(
            "{} of {} notices could not be delivered (they will be retried on the next run)",
            outcome.failures(),
            outcome.digests.len()
        );
    }
    Ok(())
}
