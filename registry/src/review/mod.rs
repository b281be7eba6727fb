//! The six-monthly review of registrations (`relayguard review run`).
//!
//! A registration is due for review `review_months` after `reviewed_on`. From `remind_days`
//! before that day its administrator gets one reminder per due date, carrying a one-click
//! renewal link: a single-use random token stored as its SHA-256 (like a password-reset link).
//! Opening the link shows a confirmation page ([`pages`]); confirming marks the registration
//! reviewed today, which moves its due date `review_months` on. A registration past its due date
//! is not in force: it drops out of every export ([`crate::export::in_force`]) and
//! `registration-expired` opens (reconcile), until it is renewed.
//!
//! Renewal does not re-run the DNS checks or the relay audit: those belong to the scanner,
//! which this crate does not depend on; the next sweep audits the host again as usual.

pub mod pages;
pub mod store;

use lettre::message::Mailbox;
use time::Date;

use crate::Store;
use crate::error::{Error, Result};
use crate::model::{Host, HostStatus, Lang, format_date};
use crate::notify::Delivery;
use crate::notify::mail;

/// How long a renewal link stays valid after its due date (and at least after it is sent).
pub const LINK_GRACE_DAYS: i64 = 30;

/// Everything a review run needs.
#[derive(Debug, Clone)]
pub struct ReviewOptions {
    /// Where the reminders go (a dry run writes .eml files and records nothing, so its links
    /// do not work).
    pub delivery: Delivery,
    /// Sender: `Name <addr>` or a bare address.
    pub from: String,
    /// The registry's public base URL, e.g. `https://registry.example.ac.jp`.
    pub base_url: String,
    /// Reminders go out this many days before the due date.
    pub remind_days: u32,
    /// Language for administrators whose own is unknown.
    pub lang: Lang,
    /// The day of the run.
    pub today: Date,
    /// The time of the run (Unix seconds).
    pub now: i64,
}

/// One reminder handled by a run.
#[derive(Debug, Clone)]
pub struct Reminder {
    /// The registration's address.
    pub address: String,
    /// The administrator written to.
    pub admin: String,
    /// The due date reminded of.
    pub due_on: String,
    /// Whether the registration is already past due.
    pub expired: bool,
    /// The .eml file (dry run) or the server's reply, or why delivery failed.
    pub result: std::result::Result<String, String>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ReviewOutcome {
    /// Every reminder, by address.
    pub reminders: Vec<Reminder>,
    /// Whether the messages were written to files.
    pub dry_run: bool,
}

impl ReviewOutcome {
    /// How many reminders could not be delivered.
    pub fn failures(&self) -> usize {
        self.reminders.iter().filter(|r| r.result.is_err()).count()
    }

    /// One line per reminder for the operator, or `no review due`.
    pub fn lines(&self) -> Vec<String> {
        if self.reminders.is_empty() {
            return vec!["no reminder due".into()];
        }
        self.reminders
            .iter()
            .map(|r| {
                let what = if r.expired { "expired" } else { "due" };
                match &r.result {
                    Ok(x) => format!(
                        "{} {} ({what} {}): {} ({})",
                        if self.dry_run { "wrote" } else { "sent" },
                        r.address,
                        r.due_on,
                        r.admin,
                        mail::one_line(x)
                    ),
                    Err(e) => format!("FAILED {} ({}): {}", r.address, r.admin, mail::one_line(e)),
                }
            })
            .collect()
    }
}

/// Parses `--from`: `Name <addr>` or `addr`.
fn parse_from(from: &str) -> Result<Mailbox> {
    let from = from.trim();
    match from.rsplit_once('<') {
        Some((name, rest)) => {
            let addr = rest
                .strip_suffix('>')
                .ok_or_else(|| Error::Invalid(format!("invalid --from {from:?}: missing '>'")))?;
            mail::mailbox(name.trim().trim_matches('"'), addr)
        }
        None => mail::mailbox("", from),
    }
}

/// Checks `--base-url`: http(s), a host, no query or fragment; returned without a trailing `/`.
pub fn parse_base_url(url: &str) -> Result<String> {
    let u = url.trim().trim_end_matches('/');
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(['?', '#', ' ', '@']) => Ok(u.to_string()),
        _ => Err(Error::Invalid(format!(
            "invalid --base-url {url:?} (expected the registry's address, e.g. https://registry.example.ac.jp)"
        ))),
    }
}

/// Whether `h` gets a reminder for its current due date on `today`.
fn reminder_due(h: &Host, today: Date, remind_days: u32) -> Option<Date> {
    if h.status != HostStatus::Active {
        return None;
    }
    let due = h.review_due().ok()?;
    (today + time::Duration::days(i64::from(remind_days)) >= due).then_some(due)
}

/// Sends the reminders due today: one per registration and due date, never twice.
pub async fn run_reviews(store: &Store, opts: &ReviewOptions) -> Result<ReviewOutcome> {
    let from = parse_from(&opts.from)?;
    let base = parse_base_url(&opts.base_url)?;
    // Expired registrations open their finding now, not at the next sweep.
    store.refresh_registrations().await?;
    let transport = match &opts.delivery {
        Delivery::Smtp(o) => Some(mail::smtp_transport(o)?),
        Delivery::DryRun(_) => None,
    };
    let mut outcome = ReviewOutcome {
        dry_run: transport.is_none(),
        ..ReviewOutcome::default()
    };
    let mut hosts = store.list_hosts().await?;
    hosts.sort_by(|a, b| a.address.cmp(&b.address));
    for (i, h) in hosts.iter().enumerate() {
        let Some(due) = reminder_due(h, opts.today, opts.remind_days) else {
            continue;
        };
        let due_on = format_date(due);
        if store.reminder_sent(&h.address, &due_on).await? {
            continue;
        }
        let to = mail::mailbox(&h.admin_name, &h.admin_email)?;
        let expired = due < opts.today;
        let token = crate::token::generate("rv")?;
        let link = format!("{base}/review/{token}");
        let lang = h.admin_lang.unwrap_or(opts.lang);
        let (subject, text, html) = pages::reminder(h, &due_on, expired, &link, lang);
        let message_id = mail::new_message_id(&from, opts.now)?;
        let message = mail::build(&from, &to, &subject, &message_id, text, html)?;
        let result = match &transport {
            None => {
                let Delivery::DryRun(dir) = &opts.delivery else {
                    unreachable!("a transport exists for SMTP delivery")
                };
                mail::write_eml(dir, i, &h.admin_email, &message)
                    .map(|p| p.display().to_string())
                    .map_err(|e| e.to_string())
            }
            Some(t) => {
                let expires = opts.now.max(store::day_start(due)) + LINK_GRACE_DAYS * 86_400;
                store
                    .add_review_token(&token, &h.address, &due_on, opts.now, expires)
                    .await?;
                match mail::send(t, message).await {
                    Ok(reply) => {
                        store.record_reminder(&h.address, &due_on, opts.now).await?;
                        Ok(reply)
                    }
                    Err(e) => {
                        // The link was never delivered: it must not linger as a valid secret.
                        store.remove_review_token(&token).await?;
                        Err(e.to_string())
                    }
                }
            }
        };
        outcome.reminders.push(Reminder {
            address: h.address.clone(),
            admin: h.admin_email.clone(),
            due_on,
            expired,
            result,
        });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            parse_base_url("https://reg.example/").unwrap(),
            "https://reg.example"
        );
        for bad in ["reg.example", "ftp://x", "https://", "https://x/?a=1"] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }
}
