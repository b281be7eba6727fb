//! `notify`: its flags, turned into [`NotifyOptions`].

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use relayguard_registry::Store;
use relayguard_registry::notify::mail::SmtpOptions;
use relayguard_registry::notify::{Delivery, Lang, NotifyOptions, notify};

/// Language of the messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// English.
    #[default]
    En,
    /// Japanese.
    Ja,
}

/// `notify`
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// Write the messages as .eml files instead of sending them; records nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory for --dry-run's .eml files [default: ./notify-out].
    #[arg(long, requires = "dry_run")]
    pub out: Option<PathBuf>,
    /// The mail server.
    #[command(flatten)]
    pub mail: SmtpArgs,
    /// Sender: ADDR or "Name <ADDR>" (required when sending).
    #[arg(long)]
    pub from: Option<String>,
    /// Language of the messages.
    #[arg(long, value_enum, default_value_t)]
    pub lang: LangArg,
    /// The security team's address, for findings with no registered admin and no network owner.
    #[arg(long)]
    pub fallback: Option<String>,
    /// Days after which findings still open are reported again (0: never).
    #[arg(long, default_value_t = 7)]
    pub reminder_days: u32,
}

/// The mail server `notify` and `review run` send through (unless `--dry-run`).
#[derive(Debug, Clone, Args)]
pub struct SmtpArgs {
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
    /// Extra CA certificate (PEM) to trust for the relay's STARTTLS or implicit TLS certificate.
    #[arg(long, requires = "smtp")]
    pub smtp_ca: Option<PathBuf>,
}

impl SmtpArgs {
    /// Where the mails go: .eml files in `out` (default `default_dir`) with `dry_run`, else
    /// the SMTP server, its password and CA read from their files.
    pub(super) fn delivery(
        self,
        dry_run: bool,
        out: Option<PathBuf>,
        default_dir: &str,
    ) -> anyhow::Result<Delivery> {
        if dry_run {
            return Ok(Delivery::DryRun(
                out.unwrap_or_else(|| PathBuf::from(default_dir)),
            ));
        }
        let url = self
            .smtp
            .context("give --smtp smtp://HOST:PORT to send, or --dry-run to write .eml files")?;
        Ok(Delivery::Smtp(smtp_options(
            url,
            self.starttls,
            self.smtp_user,
            self.smtp_password_file.as_deref(),
            self.smtp_ca.as_deref(),
        )?))
    }
}

/// SMTP options with the password (first line of its file) and the extra CA read in.
pub(super) fn smtp_options(
    url: String,
    starttls: bool,
    user: Option<String>,
    password_file: Option<&std::path::Path>,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<SmtpOptions> {
    let password = match password_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        None => None,
    };
    let ca_pem = match ca_file {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    Ok(SmtpOptions {
        url,
        starttls,
        user,
        password,
        ca_pem,
    })
}

/// The sender: `--from`, or a placeholder for a dry run (whose mails go nowhere).
pub(super) fn sender(from: Option<String>, dry_run: bool, what: &str) -> anyhow::Result<String> {
    match (from, dry_run) {
        (Some(f), _) => Ok(f),
        (None, true) => Ok("relayguard <relayguard@relayguard.invalid>".to_string()),
        (None, false) => anyhow::bail!("give --from ADDR: the sender of the {what}"),
    }
}

/// The `notify` subcommand: turns the arguments into options, runs, prints one line per digest.
pub(super) async fn run(
    store: &Store,
    a: NotifyArgs,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let delivery = a.mail.delivery(a.dry_run, a.out, "notify-out")?;
    let from = sender(a.from, a.dry_run, "notices")?;
    let opts = NotifyOptions {
        delivery,
        from,
        lang: match a.lang {
            LangArg::En => Lang::En,
            LangArg::Ja => Lang::Ja,
        },
        fallback: a.fallback,
        reminder_days: a.reminder_days,
        now: relayguard_registry::model::now_unix(),
    };
    let outcome = notify(store, &opts).await?;
    for line in outcome.lines() {
        writeln!(out, "{line}")?;
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
