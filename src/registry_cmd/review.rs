//! `review run`: its flags, turned into [`ReviewOptions`].

use std::path::PathBuf;

use clap::Args;
use relayguard_registry::Store;
use relayguard_registry::notify::{Delivery, Lang};
use relayguard_registry::review::{ReviewOptions, run_reviews};

use super::notify::{LangArg, smtp_options};

/// `review run`
#[derive(Debug, Clone, Args)]
pub struct ReviewArgs {
    /// Mail the reminder this many days before a registration's review is due.
    #[arg(long, default_value_t = 30)]
    pub remind_days: u32,
    /// The registry's public address, for the renewal links (e.g. https://registry.example.ac.jp).
    #[arg(long)]
    pub base_url: String,
    /// Write the reminders as .eml files instead of sending them; records nothing, and their
    /// links do not work.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory for --dry-run's .eml files [default: ./review-out].
    #[arg(long, requires = "dry_run")]
    pub out: Option<PathBuf>,
    /// SMTP server: smtp://HOST:PORT (smtps://HOST:PORT for implicit TLS).
    #[arg(long, conflicts_with = "dry_run")]
    pub smtp: Option<String>,
    /// Require STARTTLS on an smtp:// server (certificate verified).
    #[arg(long, requires = "smtp")]
    pub starttls: bool,
    /// SMTP AUTH user name (needs --smtp-password-file).
    #[arg(long, requires_all = ["smtp", "smtp_password_file"])]
    pub smtp_user: Option<String>,
    /// File holding the SMTP AUTH password (first line).
    #[arg(long, requires = "smtp_user")]
    pub smtp_password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the relay's certificate.
    #[arg(long, requires = "smtp")]
    pub smtp_ca: Option<PathBuf>,
    /// Sender: ADDR or "Name <ADDR>" (required when sending).
    #[arg(long)]
    pub from: Option<String>,
    /// Language for administrators whose own is not registered.
    #[arg(long, value_enum, default_value_t)]
    pub lang: LangArg,
}

/// Runs `review run`: one line per reminder.
pub(super) async fn run(
    store: &Store,
    a: ReviewArgs,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let delivery = if a.dry_run {
        Delivery::DryRun(a.out.unwrap_or_else(|| PathBuf::from("review-out")))
    } else {
        Delivery::Smtp(smtp_options(
            a.smtp,
            a.starttls,
            a.smtp_user,
            a.smtp_password_file.as_deref(),
            a.smtp_ca.as_deref(),
        )?)
    };
    let from = match (a.from, a.dry_run) {
        (Some(f), _) => f,
        (None, true) => "relayguard <relayguard@relayguard.invalid>".to_string(),
        (None, false) => anyhow::bail!("give --from ADDR: the sender of the reminders"),
    };
    let opts = ReviewOptions {
        delivery,
        from,
        base_url: a.base_url,
        remind_days: a.remind_days,
        lang: match a.lang {
            LangArg::En => Lang::En,
            LangArg::Ja => Lang::Ja,
        },
        today: relayguard_registry::model::today(),
        now: relayguard_registry::model::now_unix(),
    };
    let outcome = run_reviews(store, &opts).await?;
    for line in outcome.lines() {
        writeln!(out, "{line}")?;
    }
    if outcome.failures() > 0 {
        anyhow::bail!(
            "{} of {} reminders could not be delivered (they will be retried on the next run)",
            outcome.failures(),
            outcome.reminders.len()
        );
    }
    Ok(())
}
