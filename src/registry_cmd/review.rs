//! `review run`: its flags, turned into [`ReviewOptions`].

use std::path::PathBuf;

use clap::Args;
use relayguard_registry::Store;
use relayguard_registry::notify::Lang;
use relayguard_registry::review::{ReviewOptions, run_reviews};

use super::notify::{LangArg, SmtpArgs};

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
    /// The mail server.
    #[command(flatten)]
    pub mail: SmtpArgs,
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
    let delivery = a.mail.delivery(a.dry_run, a.out, "review-out")?;
    let from = super::notify::sender(a.from, a.dry_run, "reminders")?;
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
