//! The registry's command line (`hosts`, `networks`, `findings`, `serve`, `agents`, `notify`,
//! `export`, `review`), mounted by both binaries of this package: `relayguard` and
//! `relayguard-registry`.
//!
//! Argument parsing and printing live here; the work is done by `relayguard_registry`, which
//! takes typed values (a [`relayguard_registry::notify::NotifyOptions`], a
//! [`relayguard_registry::server::ServeConfig`]) and returns its own error type.

mod external_dns;
mod notify;
mod review;
mod table;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use relayguard_core::rules::RuleSet;
use relayguard_registry::model::{HostInput, HostUpdate, Network, today};
use relayguard_registry::server::{
    ServeConfig, load_admin_tokens, load_metrics_tokens, serve_with_desk,
};
use relayguard_registry::store::{FindingFilter, FindingStatus, Store, parse_severity};
use relayguard_registry::{csv_io, export};

pub use external_dns::ExternalDnsArgs;
pub use notify::NotifyArgs;
pub use review::ReviewArgs;
use table::{clean, findings_table, table};

/// `--database URL`: where the registry lives (shared by `sweep`, `hosts`, `serve`, …).
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// Registry database: sqlite://PATH or postgres://USER@HOST/DB [default: $RELAYGUARD_DATABASE,
    /// else registry.db in the user's data directory]
    #[arg(long = "database", global = true)]
    pub database: Option<String>,
}

impl DatabaseArgs {
    /// The URL to open: the flag, else the environment, else
    /// [`relayguard_registry::default_database_url`].
    pub fn url(&self) -> String {
        self.database
            .clone()
            .or_else(|| {
                std::env::var("RELAYGUARD_DATABASE")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .unwrap_or_else(relayguard_registry::default_database_url)
    }
}

/// Output format of listings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people (control characters escaped).
    #[default]
    Table,
    /// JSON array.
    Json,
    /// CSV with a header row.
    Csv,
}

/// The registry's subcommands.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Registrations: who may run what on each address.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// Network blocks and their owners (who hears about unregistered hosts).
    #[command(subcommand)]
    Networks(NetworksCommand),
    /// List findings.
    Findings(FindingsArgs),
    /// Serve the HTTP API and pages.
    Serve(ServeArgs),
    /// Host-agent enrollment.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// E-mail each host admin a digest of new, changed and resolved findings with the fix.
    Notify(NotifyArgs),
    /// Administrators who may sign in at the registration desk without a registration.
    #[command(subcommand)]
    DeskAdmins(desk_admins::DeskAdminsCommand),
    /// Files that drive other systems from the registrations (the external DNS view).
    #[command(subcommand)]
    Export(ExportCommand),
    /// The six-monthly review of registrations.
    #[command(subcommand)]
    Review(ReviewCommand),
}

/// `review …`
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Mail each administrator whose registration is due for review (once per due date) a
    /// one-click renewal link; registrations past due drop out of the exports.
    Run(ReviewArgs),
}

/// `export …`
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Zone files for the external name servers: the internal zones (by AXFR) with the MX of
    /// via-gateway hosts pointing at the gateways and internal-only hosts' MX left out.
    ExternalDns(ExternalDnsArgs),
}

/// `hosts …`
#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Register a host.
    Add(HostAddArgs),
    /// List registrations.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one registration with its findings.
    Show {
        /// Address.
        address: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change a registration.
    Update(HostUpdateArgs),
    /// Remove a registration.
    Rm {
        /// Address.
        address: String,
    },
    /// Show or set a mail server's queue health thresholds (`mail-queue-backlog` at 500
    /// queued messages and `bounce-burst` at 100 bounces unless set); they apply from its next
    /// agent report.
    Thresholds {
        /// Address.
        address: String,
        /// Queued messages from which `mail-queue-backlog` opens, or `default`.
        #[arg(long, value_name = "N|default", value_parser = threshold_arg)]
        queue_backlog: Option<Threshold>,
        /// Bounces from which `bounce-burst` opens, or `default`.
        #[arg(long, value_name = "N|default", value_parser = threshold_arg)]
        bounce_burst: Option<Threshold>,
        /// Who decides [default: $SUDO_USER or $USER].
        #[arg(long)]
        by: Option<String>,
    },
    /// Import registrations from CSV (all rows or none); `-` reads standard input.
    Import {
        /// CSV file with a header row (address,hostname,role,admin_name,admin_email[,note,…]).
        file: PathBuf,
    },
    /// Export registrations or the firewall allow-list.
    Export {
        /// What to write.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// A threshold given to `hosts thresholds`: a number, or back to the registry's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// This many.
    Set(u64),
    /// The registry's default.
    Default,
}

fn threshold_arg(s: &str) -> Result<Threshold, String> {
    if s == "default" {
        return Ok(Threshold::Default);
    }
    s.parse()
        .map(Threshold::Set)
        .map_err(|_| format!("{s:?} is neither a number nor `default`"))
}

/// What `hosts export` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Registrations as CSV.
    #[default]
    Csv,
    /// Registrations as JSON.
    Json,
    /// nftables sets of active mail-direct hosts.
    Nft,
    /// Active mail-direct addresses, one per line.
    Plain,
}

/// `hosts add`
#[derive(Debug, Args)]
pub struct HostAddArgs {
    /// Address (IPv4 or IPv6).
    pub address: String,
    /// DNS name.
    #[arg(long)]
    pub hostname: String,
    /// mail-direct, mail-via-gateway, internal-only or non-mail.
    #[arg(long)]
    pub role: String,
    /// Administrator's name.
    #[arg(long)]
    pub admin_name: String,
    /// Administrator's e-mail.
    #[arg(long)]
    pub admin_email: String,
    /// Free text.
    #[arg(long)]
    pub note: Option<String>,
    /// YYYY-MM-DD [default: today].
    #[arg(long)]
    pub registered_on: Option<String>,
    /// YYYY-MM-DD [default: registered-on].
    #[arg(long)]
    pub reviewed_on: Option<String>,
    /// Months between reviews [default: 6].
    #[arg(long)]
    pub review_months: Option<i64>,
    /// active, suspended or retired [default: active].
    #[arg(long)]
    pub status: Option<String>,
    /// Language the administrator is mailed in: en or ja [default: notify's --lang].
    #[arg(long)]
    pub admin_lang: Option<String>,
}

/// `hosts update`
#[derive(Debug, Args)]
pub struct HostUpdateArgs {
    /// Address.
    pub address: String,
    /// New DNS name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// New role.
    #[arg(long)]
    pub role: Option<String>,
    /// New administrator's name.
    #[arg(long)]
    pub admin_name: Option<String>,
    /// New administrator's e-mail.
    #[arg(long)]
    pub admin_email: Option<String>,
    /// New note.
    #[arg(long)]
    pub note: Option<String>,
    /// New review date (YYYY-MM-DD).
    #[arg(long)]
    pub reviewed_on: Option<String>,
    /// Mark as reviewed today.
    #[arg(long)]
    pub reviewed: bool,
    /// New review interval in months.
    #[arg(long)]
    pub review_months: Option<i64>,
    /// New status.
    #[arg(long)]
    pub status: Option<String>,
    /// New mail language: en or ja ("" clears it).
    #[arg(long)]
    pub admin_lang: Option<String>,
}

/// `networks …`
#[derive(Debug, Subcommand)]
pub enum NetworksCommand {
    /// Add a block.
    Add {
        /// CIDR, e.g. 133.6.0.0/16.
        cidr: String,
        /// Owner's name.
        #[arg(long)]
        owner_name: String,
        /// Owner's e-mail.
        #[arg(long)]
        owner_email: String,
        /// Free text.
        #[arg(long, default_value = "")]
        note: String,
        /// Language the owner is mailed in: en or ja [default: notify's --lang].
        #[arg(long)]
        owner_lang: Option<String>,
    },
    /// List blocks.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove a block.
    Rm {
        /// CIDR.
        cidr: String,
    },
}

/// `findings`
#[derive(Debug, Default, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FindingsArgs {
    /// Override a finding, or read the audit log (without one: list findings).
    #[command(subcommand)]
    pub action: Option<FindingsAction>,
    /// Only open findings (same as --status open).
    #[arg(long)]
    pub open: bool,
    /// open, resolved or all.
    #[arg(long)]
    pub status: Option<String>,
    /// Minimum severity (info, low, medium, high, critical).
    #[arg(long)]
    pub severity: Option<String>,
    /// Only findings whose contact is this e-mail.
    #[arg(long)]
    pub admin: Option<String>,
    /// Only this address.
    #[arg(long)]
    pub address: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `findings override …`, `findings audit-log`
#[derive(Debug, Subcommand)]
pub enum FindingsAction {
    /// Mark a finding as an accepted risk or a false positive (or --clear the mark): it is then
    /// not mailed, and shown struck through, until the date passes or its evidence changes.
    Override {
        /// The finding's number (the # column of `findings` and the pages).
        id: i64,
        /// The risk is accepted until --until.
        #[arg(long, required_unless_present_any = ["false_positive", "clear"], conflicts_with_all = ["false_positive", "clear"])]
        accepted_risk: bool,
        /// The finding is wrong for a reason relayguard cannot see.
        #[arg(long, conflicts_with = "clear")]
        false_positive: bool,
        /// Remove the override.
        #[arg(long)]
        clear: bool,
        /// Last day the override holds, YYYY-MM-DD (required with --accepted-risk).
        #[arg(long, conflicts_with = "clear")]
        until: Option<String>,
        /// Why (required unless --clear).
        #[arg(long, required_unless_present = "clear")]
        reason: Option<String>,
        /// Who decides [default: $SUDO_USER or $USER].
        #[arg(long)]
        by: Option<String>,
    },
    /// Print the audit log (overrides made or cleared, registrations created, changed or
    /// removed, desk administrators added or removed), newest first.
    AuditLog {
        /// Most entries shown.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

mod desk_admins;
mod desk_checks;

/// `serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8025")]
    pub listen: SocketAddr,
    /// PEM certificate chain: serve HTTPS (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File with admin bearer tokens, one per line (also read: $RELAYGUARD_ADMIN_TOKENS).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// File with tokens that may read /metrics and nothing else, one per line (also read:
    /// $RELAYGUARD_METRICS_TOKENS).
    #[arg(long)]
    pub metrics_token_file: Option<PathBuf>,
    /// Open the registration desk (sign-in by mailed link) at this URL, as administrators
    /// reach it (https://… makes its cookies Secure); needs --smtp and --from.
    #[arg(long, requires_all = ["smtp", "from"])]
    pub desk_url: Option<String>,
    /// SMTP server for the desk's mails: smtp://HOST:PORT (smtps://HOST:PORT for implicit TLS).
    #[arg(long, requires = "desk_url")]
    pub smtp: Option<String>,
    /// Require STARTTLS on an smtp:// server (certificate verified).
    #[arg(long, requires = "smtp")]
    pub smtp_starttls: bool,
    /// SMTP AUTH user name (needs --smtp-password-file).
    #[arg(long, requires_all = ["smtp", "smtp_password_file"])]
    pub smtp_user: Option<String>,
    /// File holding the SMTP AUTH password.
    #[arg(long, requires = "smtp_user")]
    pub smtp_password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) trusted for the SMTP server.
    #[arg(long, requires = "smtp")]
    pub smtp_ca: Option<PathBuf>,
    /// Sender of the desk's mails: `Name <addr>` or `addr`.
    #[arg(long, requires = "desk_url")]
    pub from: Option<String>,
    /// DNS server(s) for the checks of applications, ADDR or ADDR:PORT (repeatable; default:
    /// the system's resolvers).
    #[arg(long, value_name = "ADDR:PORT", requires = "desk_url")]
    pub resolver: Vec<String>,
    /// Never audit these for an application (CIDR, range, address or @FILE); such a
    /// mail-direct application needs changes and the team checks it by hand.
    #[arg(long, value_name = "CIDR", requires = "desk_url")]
    pub audit_exclude: Vec<String>,
    /// Audit loopback, private-use and other special-purpose addresses too (tests).
    #[arg(long, requires = "desk_url")]
    pub audit_allow_special: bool,
    /// New connections per second of the relay audits of applications (0 = unlimited).
    #[arg(long, default_value_t = 10.0, value_name = "PER_SECOND")]
    pub audit_rate: f64,
    /// Local address the relay audits connect from: the vantage the security team counts as
    /// external.
    #[arg(long, value_name = "ADDR", requires = "desk_url")]
    pub audit_source: Option<std::net::IpAddr>,
    /// Third-party domain of the relay tests.
    #[arg(long, default_value = "example.com", value_name = "DOMAIN")]
    pub external_domain: String,
    /// Name the relay audits give in EHLO/HELO.
    #[arg(long, default_value = "relayguard.invalid", value_name = "NAME")]
    pub ehlo_name: String,
    /// Hold applications that pass every check for the security team to approve.
    #[arg(long, requires = "desk_url")]
    pub manual_approval: bool,
}

/// The desk's configuration from `serve`'s flags (None without --desk-url).
fn desk_config(a: &ServeArgs) -> anyhow::Result<Option<relayguard_registry::desk::DeskConfig>> {
    let (Some(url), Some(smtp), Some(from)) = (&a.desk_url, &a.smtp, &a.from) else {
        return Ok(None);
    };
    Ok(Some(relayguard_registry::desk::DeskConfig {
        base_url: url.clone(),
        from: from.clone(),
        smtp: notify::smtp_options(
            smtp.clone(),
            a.smtp_starttls,
            a.smtp_user.clone(),
            a.smtp_password_file.as_deref(),
            a.smtp_ca.as_deref(),
        )?,
    }))
}

/// `agents …`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Create (or rotate) the agent token of a registered host and print it once.
    Token {
        /// The host's address.
        host: String,
    },
}

/// Runs a registry command against the database at `database_url`, printing to stdout.
///
/// `rules` is `--rules DIR`: the severities of the findings the registry derives itself come
/// from its `severities.yaml` (the built-in rules otherwise), as they do for a sweep.
pub async fn run(
    database_url: &str,
    rules: Option<&Path>,
    cmd: RegistryCommand,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    run_to(database_url, rules, cmd, &mut out).await
}

/// Like [`run`], writing output to `out`.
pub async fn run_to(
    database_url: &str,
    rules: Option<&Path>,
    cmd: RegistryCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut store = Store::open(database_url).await.with_context(|| {
        format!(
            "opening registry {}",
            relayguard_registry::store::redact(database_url)
        )
    })?;
    if rules.is_some() {
        store = store.with_rules(Arc::new(RuleSet::load(rules).context("loading rules")?));
    }
    match cmd {
        RegistryCommand::Hosts(c) => hosts(&store, c, out).await,
        RegistryCommand::Networks(c) => networks(&store, c, out).await,
        RegistryCommand::Findings(a) => findings(&store, a, out).await,
        RegistryCommand::Serve(a) => {
            let admin_tokens = load_admin_tokens(a.admin_token_file.as_deref())?;
            let metrics_tokens = load_metrics_tokens(a.metrics_token_file.as_deref())?;
            let desk = match desk_config(&a)? {
                Some(c) => Some(
                    relayguard_registry::desk::Desk::new(&c)?
                        .with_checks(Arc::new(desk_checks::build(&a)?), a.manual_approval),
                ),
                None => None,
            };
            serve_with_desk(
                store,
                ServeConfig {
                    listen: a.listen,
                    tls_cert: a.tls_cert,
                    tls_key: a.tls_key,
                    admin_tokens,
                    metrics_tokens,
                },
                desk,
            )
            .await?;
            Ok(())
        }
        RegistryCommand::Notify(a) => notify::run(&store, a, out).await,
        RegistryCommand::Export(ExportCommand::ExternalDns(a)) => {
            external_dns::run(&store, a, out).await
        }
        RegistryCommand::Review(ReviewCommand::Run(a)) => review::run(&store, a, out).await,
        RegistryCommand::DeskAdmins(c) => desk_admins::run(&store, c, out).await,
        RegistryCommand::Agents(AgentsCommand::Token { host }) => {
            let token = store.create_agent_token(&host).await?;
            writeln!(out, "{token}")?;
            Ok(())
        }
    }
}

async fn hosts(
    store: &Store,
    cmd: HostsCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match cmd {
        HostsCommand::Add(a) => {
            let host = HostInput {
                admin_lang: a.admin_lang,
                address: a.address,
                hostname: a.hostname,
                role: a.role,
                admin_name: a.admin_name,
                admin_email: a.admin_email,
                note: a.note,
                registered_on: a.registered_on,
                reviewed_on: a.reviewed_on,
                review_months: a.review_months,
                status: a.status,
            }
            .validate(today())?;
            store.add_host(&host).await?;
            writeln!(
                out,
                "registered {} ({}) as {}",
                host.address, host.hostname, host.role
            )?;
        }
        HostsCommand::List { format } => {
            let hosts = store.list_hosts().await?;
            match format {
                Format::Json => writeln!(out, "{}", export::hosts_json(&hosts))?,
                Format::Csv => write!(out, "{}", csv_io::hosts_to_csv(&hosts)?)?,
                Format::Table => {
                    let rows: Vec<Vec<String>> = hosts
                        .iter()
                        .map(|h| {
                            vec![
                                h.address.clone(),
                                h.hostname.clone(),
                                h.role.to_string(),
                                h.status.to_string(),
                                h.admin_email.clone(),
                                h.reviewed_on.clone(),
                            ]
                        })
                        .collect();
                    table(
                        out,
                        &["ADDRESS", "HOSTNAME", "ROLE", "STATUS", "ADMIN", "REVIEWED"],
                        &rows,
                    )?;
                }
            }
        }
        HostsCommand::Show { address, format } => {
            let host = store.get_host(&address).await?.ok_or_else(|| {
                relayguard_registry::Error::NotFound(format!("host {}", address.trim()))
            })?;
            store.refresh_registrations().await?;
            let findings = store
                .list_findings(&FindingFilter {
                    address: Some(host.address.clone()),
                    ..Default::default()
                })
                .await?;
            match format {
                Format::Json => {
                    let mut v = serde_json::to_value(&host)?;
                    v["review_due"] = serde_json::json!(
                        host.review_due()
                            .ok()
                            .map(relayguard_registry::model::format_date)
                    );
                    v["findings"] = serde_json::to_value(&findings)?;
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                }
                Format::Csv => write!(
                    out,
                    "{}",
                    csv_io::hosts_to_csv(std::slice::from_ref(&host))?
                )?,
                Format::Table => {
                    let due = host
                        .review_due()
                        .map(relayguard_registry::model::format_date)
                        .unwrap_or_default();
                    for (k, v) in [
                        ("address", host.address.as_str()),
                        ("hostname", &host.hostname),
                        ("role", host.role.as_str()),
                        ("status", host.status.as_str()),
                        (
                            "admin",
                            &format!("{} <{}>", host.admin_name, host.admin_email),
                        ),
                        ("registered", &host.registered_on),
                        ("reviewed", &host.reviewed_on),
                        ("review due", &due),
                        ("note", &host.note),
                    ] {
                        writeln!(out, "{k:<11} {}", clean(v))?;
                    }
                    writeln!(out)?;
                    findings_table(out, &findings)?;
                }
            }
        }
        HostsCommand::Update(a) => {
            let upd = HostUpdate {
                admin_lang: a.admin_lang,
                hostname: a.hostname,
                role: a.role,
                admin_name: a.admin_name,
                admin_email: a.admin_email,
                note: a.note,
                reviewed_on: a.reviewed_on,
                reviewed: a.reviewed,
                review_months: a.review_months,
                status: a.status,
            };
            let h = store.update_host(&a.address, &upd).await?;
            writeln!(
                out,
                "updated {} ({}, {}, {})",
                h.address, h.hostname, h.role, h.status
            )?;
        }
        HostsCommand::Thresholds {
            address,
            queue_backlog,
            bounce_burst,
            by,
        } => {
            let mut set = store.health_thresholds(&address).await?;
            if queue_backlog.is_some() || bounce_burst.is_some() {
                let pick = |t: Option<Threshold>, old: Option<u64>| match t {
                    None => old,
                    Some(Threshold::Set(n)) => Some(n),
                    Some(Threshold::Default) => None,
                };
                set.queue_backlog_threshold = pick(queue_backlog, set.queue_backlog_threshold);
                set.bounce_burst_threshold = pick(bounce_burst, set.bounce_burst_threshold);
                let by = by
                    .or_else(|| std::env::var("SUDO_USER").ok())
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_else(|| "cli".into());
                set = store.set_health_thresholds(&address, &set, &by).await?;
            }
            let e = set.effective();
            let show = |v: Option<u64>, eff: u64| match v {
                Some(_) => eff.to_string(),
                None => format!("{eff} (default)"),
            };
            writeln!(
                out,
                "{}: mail-queue-backlog at {} queued messages, bounce-burst at {} bounces",
                address.trim(),
                show(set.queue_backlog_threshold, e.queue_backlog_threshold),
                show(set.bounce_burst_threshold, e.bounce_burst_threshold)
            )?;
        }
        HostsCommand::Rm { address } => {
            if !store.remove_host(&address).await? {
                return Err(relayguard_registry::Error::NotFound(format!(
                    "host {}",
                    address.trim()
                ))
                .into());
            }
            writeln!(out, "removed {}", address.trim())?;
        }
        HostsCommand::Import { file } => {
            let data = if file.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let n = csv_io::import_hosts(store, &data).await?;
            writeln!(out, "imported {n} registrations")?;
        }
        HostsCommand::Export { format, output } => {
            let hosts = store.list_hosts().await?;
            let text = match format {
                ExportFormat::Csv => csv_io::hosts_to_csv(&hosts)?,
                ExportFormat::Json => export::hosts_json(&hosts) + "\n",
                ExportFormat::Nft => export::allowlist_nftables(&hosts),
                ExportFormat::Plain => export::allowlist_plain(&hosts),
            };
            match output {
                Some(path) => write_atomically(&path, text.as_bytes())?,
                None => write!(out, "{text}")?,
            }
        }
    }
    Ok(())
}

async fn networks(
    store: &Store,
    cmd: NetworksCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match cmd {
        NetworksCommand::Add {
            cidr,
            owner_name,
            owner_email,
            note,
            owner_lang,
        } => {
            let net = Network {
                owner_lang: owner_lang
                    .as_deref()
                    .map(str::parse::<relayguard_registry::model::Lang>)
                    .transpose()?,
                cidr,
                owner_name,
                owner_email,
                note,
            }
            .validate()?;
            store.add_network(&net).await?;
            writeln!(out, "added {} ({})", net.cidr, net.owner_email)?;
        }
        NetworksCommand::List { format } => {
            let nets = store.list_networks().await?;
            match format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&nets)?)?,
                Format::Csv => {
                    let mut w = csv::Writer::from_writer(Vec::new());
                    w.write_record(["cidr", "owner_name", "owner_email", "note"])?;
                    for n in &nets {
                        w.write_record([&n.cidr, &n.owner_name, &n.owner_email, &n.note])?;
                    }
                    out.write_all(
                        &w.into_inner()
                            .map_err(|e| anyhow::anyhow!("writing CSV: {e}"))?,
                    )?;
                }
                Format::Table => {
                    let rows: Vec<Vec<String>> = nets
                        .iter()
                        .map(|n| {
                            vec![
                                n.cidr.clone(),
                                n.owner_name.clone(),
                                n.owner_email.clone(),
                                n.note.clone(),
                            ]
                        })
                        .collect();
                    table(out, &["CIDR", "OWNER", "E-MAIL", "NOTE"], &rows)?;
                }
            }
        }
        NetworksCommand::Rm { cidr } => {
            if !store.remove_network(&cidr).await? {
                return Err(relayguard_registry::Error::NotFound(format!(
                    "network {}",
                    cidr.trim()
                ))
                .into());
            }
            writeln!(out, "removed {}", cidr.trim())?;
        }
    }
    Ok(())
}

async fn findings_action(
    store: &Store,
    action: FindingsAction,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match action {
        FindingsAction::Override {
            id,
            accepted_risk,
            false_positive: _,
            clear,
            until,
            reason,
            by,
        } => {
            let by = by
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
            if clear {
                if !store.clear_override(id, &by).await? {
                    anyhow::bail!("finding {id} has no override");
                }
                writeln!(out, "finding {id}: override cleared")?;
                return Ok(());
            }
            let kind = if accepted_risk {
                "accepted-risk"
            } else {
                "false-positive"
            };
            let o = store
                .set_override(
                    id,
                    &relayguard_registry::store::OverrideInput {
                        kind: kind.into(),
                        reason: reason.unwrap_or_default(),
                        by,
                        until,
                    },
                )
                .await?;
            let until = o.until.map(|u| format!(" until {u}")).unwrap_or_default();
            writeln!(out, "finding {id}: {}{until}", o.kind)?;
        }
        FindingsAction::AuditLog { limit } => {
            for e in store.audit_log(limit).await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    e.at, e.actor, e.action, e.subject, e.detail
                )?;
            }
        }
    }
    Ok(())
}

async fn findings(
    store: &Store,
    a: FindingsArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    if let Some(action) = a.action {
        return findings_action(store, action, out).await;
    }
    let status = match (a.open, a.status.as_deref().map(str::trim)) {
        (true, Some(s)) if s != "open" => anyhow::bail!("--open contradicts --status {s}"),
        (true, _) => Some(FindingStatus::Open),
        (false, None | Some("all")) => None,
        (false, Some(s)) => Some(s.parse()?),
    };
    let filter = FindingFilter {
        status,
        min_severity: a.severity.as_deref().map(parse_severity).transpose()?,
        admin: a.admin,
        address: a
            .address
            .as_deref()
            .map(relayguard_registry::model::parse_address)
            .transpose()?,
    };
    store.refresh_registrations().await?;
    let rows = store.list_findings(&filter).await?;
    match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "address",
                "port",
                "kind",
                "severity",
                "status",
                "summary",
                "first_seen",
                "last_seen",
                "resolved_at",
                "contact",
                "vantages",
            ])?;
            for f in &rows {
                w.write_record([
                    f.address.clone(),
                    f.port.to_string(),
                    f.kind.clone(),
                    f.severity.to_string(),
                    f.status.to_string(),
                    f.summary.clone(),
                    f.first_seen.to_string(),
                    f.last_seen.to_string(),
                    f.resolved_at.map(|t| t.to_string()).unwrap_or_default(),
                    f.admin_email.clone().unwrap_or_default(),
                    f.vantages.join(" "),
                ])?;
            }
            out.write_all(
                &w.into_inner()
                    .map_err(|e| anyhow::anyhow!("writing CSV: {e}"))?,
            )?;
        }
        Format::Table => findings_table(out, &rows)?,
    }
    Ok(())
}

/// Writes via a temp file and rename, so a firewall reading the allow-list never sees half of it.
fn write_atomically(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("export")
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    Ok(())
}
