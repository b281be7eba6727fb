//! `relayguard sweep`: builds the sweep from the arguments, runs it, writes the results.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use relayguard_core::rules::RuleSet;
use relayguard_core::scan::HostResult;
use relayguard_core::scan::PortState;
use relayguard_scanner::audit::DnsAudit;
use relayguard_scanner::discover;
use relayguard_scanner::dns::{AxfrOptions, Dns, DnsConfig, GenericPtrRules, SerialState};
use relayguard_scanner::smtp::tls::load_pem_certificates;
use relayguard_scanner::smtp::{SessionConfig, TlsSetup};
use relayguard_scanner::targets::{self, TargetSet};
use relayguard_scanner::{AuditConfig, Pacer, Progress, SweepConfig, sweep};
use tokio::sync::mpsc;

use crate::cli::{Format, SweepArgs};
use crate::output::{self, Report, Summary, ZoneReport};
use crate::{EXIT_FINDINGS, EXIT_INTERRUPTED};

/// Descriptors kept free for everything that is not a discovery connection.
const RESERVED_FILES: u64 = 64;

/// Runs the sweep and returns the exit code.
pub async fn run(args: SweepArgs) -> anyhow::Result<u8> {
    for (what, value) in [
        ("--ehlo-name", &args.ehlo_name),
        ("--external-domain", &args.external_domain),
        ("--probe-sender", &args.probe_sender),
        ("--probe-recipient", &args.probe_recipient),
    ] {
        check_token(what, value)?;
    }
    for d in &args.local_domain {
        check_token("--local-domain", d)?;
    }
    if args.ports.is_empty() || args.ports.contains(&0) {
        bail!("--ports needs one or more ports between 1 and 65535");
    }
    let rules = RuleSet::load(args.rules.as_deref()).context("loading rules")?;
    let dns = dns_audit(&args, &rules)?;
    let targets = build_targets(&args, dns.as_ref().map(|d| &d.dns)).await?;
    if targets.len() > args.max_addresses {
        bail!(
            "the targets cover {} addresses, more than --max-addresses {}; narrow them or raise the limit",
            targets.len(),
            args.max_addresses
        );
    }

    if let Some(source) = args.source {
        let (has_v4, has_v6) = targets.families();
        if (source.is_ipv4() && has_v6) || (source.is_ipv6() && has_v4) {
            bail!(
                "--source {source} cannot reach targets of the other address family; sweep IPv4 and IPv6 separately, each with a --source of its family"
            );
        }
    }
    let mut out = open_output(args.output.as_deref())?;
    if args.list_targets {
        for t in targets.iter() {
            match &t.name {
                Some(name) => writeln!(out, "{}\t{name}", t.ip)?,
                None => writeln!(out, "{}", t.ip)?,
            }
        }
        out.flush()?;
        return Ok(0);
    }

    let extra_roots = load_pem_certificates(&args.tls_ca).map_err(anyhow::Error::msg)?;
    let tls = TlsSetup::new(extra_roots).context("setting up TLS")?;
    let open_files = relayguard_scanner::raise_open_file_limit().unwrap_or(1024);
    let audit_files = (args.audit_concurrency * args.sessions_per_host) as u64;
    let room = open_files
        .saturating_sub(RESERVED_FILES + audit_files)
        .max(16);
    let concurrency = (args.concurrency as u64).min(room) as usize;
    if concurrency < args.concurrency {
        tracing::warn!(
            concurrency,
            open_files,
            "concurrency lowered to fit the open-file limit"
        );
    }

    let pacer = Arc::new(Pacer::new(Some(args.rate)));
    let config = SweepConfig {
        ports: args.ports.clone(),
        concurrency,
        audit_concurrency: args.audit_concurrency,
        connect_timeout: seconds("--connect-timeout", args.connect_timeout)?,
        filtered_retries: args.retries,
        report_unreachable: args.all,
        pacer,
        audit: Arc::new(AuditConfig {
            session: SessionConfig {
                ehlo_name: args.ehlo_name.clone(),
                connect_timeout: seconds("--connect-timeout", args.connect_timeout)?,
                source: args.source,
                tls,
            },
            external_domain: args.external_domain.clone(),
            local_domains: args.local_domain.clone(),
            probe_sender: args.probe_sender.clone(),
            probe_recipient: args.probe_recipient.clone(),
            command_timeout: seconds("--command-timeout", args.command_timeout)?,
            host_deadline: seconds("--host-deadline", args.host_deadline)?,
            sessions_per_host: args.sessions_per_host.max(1),
            tests_per_session: args.tests_per_session.max(1),
            rules: Arc::new(rules),
            dns: dns.clone(),
        }),
    };

    let started_at = now_rfc3339();
    let total = targets.len().saturating_mul(args.ports.len() as u128);
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(&args, total);
    let ticker = bar.clone().map(|bar| spawn_ticker(bar, progress.clone()));

    let (tx, mut rx) = mpsc::channel::<HostResult>(256);
    let sweep_progress = progress.clone();
    let zone_config = config.clone();
    let sweep_task = tokio::spawn(async move {
        sweep::run(&targets, &config, sweep_progress, tx).await;
        (targets, config)
    });
    let mut sweep_task = Some(sweep_task);

    let mut hosts = Vec::new();
    let mut interrupted = false;
    let mut addresses = 0u128;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(host) => {
                    if args.format == Format::Jsonl {
                        output::write_jsonl(&mut out, &host)?;
                    } else {
                        hosts.push(host);
                    }
                }
                None => break,
            },
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                if let Some(task) = &sweep_task {
                    task.abort();
                }
                eprintln!("relayguard: interrupted; writing the results gathered so far");
            }
        }
    }
    let mut zones = Vec::new();
    if let Some(task) = sweep_task.take()
        && let Ok((targets, _)) = task.await
    {
        addresses = targets.len();
        if let Some(dns) = &dns {
            for zone in &args.zone {
                zones.push(check_zone(zone, &dns.dns, &targets, &zone_config).await);
            }
        }
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    hosts.sort_by_key(|h| (h.address, h.port));
    let summary = Summary {
        addresses,
        probed: progress.probed.load(Ordering::Relaxed),
        open: progress.open.load(Ordering::Relaxed),
        closed: progress.closed.load(Ordering::Relaxed),
        filtered: progress.filtered.load(Ordering::Relaxed),
        findings: progress.findings.load(Ordering::Relaxed)
            + zones.iter().map(|z| z.findings.len() as u64).sum::<u64>(),
    };
    match args.format {
        Format::Jsonl => {}
        Format::Json => output::write_json(
            &mut out,
            &Report {
                relayguard_version: env!("CARGO_PKG_VERSION"),
                started_at,
                finished_at: now_rfc3339(),
                interrupted,
                summary: &summary,
                hosts: &hosts,
                zones: &zones,
            },
        )?,
        Format::Csv => output::write_csv(&mut out, &hosts, &zones)?,
        Format::Table => output::write_table(&mut out, &hosts, &zones, &summary)?,
    }
    out.flush()?;
    Ok(if interrupted {
        EXIT_INTERRUPTED
    } else if summary.findings > 0 {
        EXIT_FINDINGS
    } else {
        0
    })
}

/// The DNS checks as the arguments ask for them (`None` with `--no-dns`).
fn dns_audit(args: &SweepArgs, rules: &RuleSet) -> anyhow::Result<Option<DnsAudit>> {
    if args.no_dns {
        if !args.dnsbl.is_empty() || !args.resolver.is_empty() {
            bail!("--no-dns cannot be combined with --resolver or --dnsbl");
        }
        return Ok(None);
    }
    let servers = args
        .resolver
        .iter()
        .map(|r| DnsConfig::parse_server(r).map_err(|e| anyhow::anyhow!("--resolver {r:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for zone in &args.dnsbl {
        check_token("--dnsbl", zone)?;
    }
    let config = DnsConfig {
        servers,
        ..DnsConfig::default()
    };
    let mut dns = Dns::new(&config)
        .context("setting up the DNS resolver (pass --resolver ADDR:PORT, or --no-dns)")?
        .with_rules(rules.clone());
    if let Some(dir) = &args.rules {
        let path = dir.join("generic-ptr.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let generic = GenericPtrRules::from_yaml(&text, &path.display().to_string())?;
                dns = dns.with_generic_ptr_rules(generic);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
    Ok(Some(DnsAudit {
        dns,
        dnsbl_zones: args.dnsbl.clone(),
    }))
}

/// Rejects values that would break an SMTP command line (spaces, CR/LF, other controls).
fn check_token(what: &str, value: &str) -> anyhow::Result<()> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c))
    {
        bail!(
            "{what} {value:?} must be non-empty and free of spaces, control characters, <, > and quotes"
        );
    }
    Ok(())
}

fn seconds(what: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{what} must be a positive number of seconds, not {value}"))
}

async fn build_targets(args: &SweepArgs, dns: Option<&Dns>) -> anyhow::Result<TargetSet> {
    let mut specs = Vec::new();
    for t in &args.targets {
        specs.extend(targets::parse_target(t)?);
    }
    let mut exclusions = Vec::new();
    for e in &args.exclude {
        exclusions.extend(targets::parse_exclusion(e)?);
    }
    for f in &args.exclude_file {
        exclusions.extend(targets::parse_exclusion_file(f)?);
    }
    let mut set = TargetSet::build(&specs, &exclusions, |name| async move {
        tokio::net::lookup_host((name.as_str(), 25))
            .await
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .map_err(|e| e.to_string())
    })
    .await?;
    if args.from_dns.is_empty() {
        return Ok(set);
    }
    let Some(dns) = dns else {
        bail!("--from-dns needs DNS: drop --no-dns");
    };
    let axfr = if args.no_axfr {
        None
    } else {
        let servers = args
            .axfr_server
            .iter()
            .map(|s| {
                DnsConfig::parse_server(s).map_err(|e| anyhow::anyhow!("--axfr-server {s:?}: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Some(AxfrOptions {
            servers,
            ..AxfrOptions::default()
        })
    };
    let state_path = args
        .dns_state
        .clone()
        .unwrap_or_else(|| relayguard_core::paths::data_dir().join("dns-serials.json"));
    let mut state = SerialState::load(&state_path)
        .with_context(|| format!("reading zone serials from {}", state_path.display()))?;
    for zone in &args.from_dns {
        check_token("--from-dns", zone)?;
        let found = dns
            .targets_from_zone(zone, axfr.as_ref(), Some(&mut state))
            .await;
        for note in &found.inconclusive {
            tracing::warn!(zone, "{note}");
        }
        if found.targets.is_empty() {
            tracing::warn!(zone, "no addresses found in the zone");
        }
        for t in found.targets {
            set.add_named(&t.name, [t.ip]);
        }
    }
    if axfr.is_some() {
        if let Some(dir) = state_path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        state
            .save()
            .with_context(|| format!("saving zone serials to {}", state_path.display()))?;
    }
    Ok(set)
}

/// The MX checks of one campus zone. MX addresses in the exclusion list are not probed.
async fn check_zone(
    zone: &str,
    dns: &Dns,
    targets: &TargetSet,
    config: &SweepConfig,
) -> ZoneReport {
    let excluded = std::sync::Mutex::new(Vec::new());
    let probe = |addr: std::net::SocketAddr| {
        let skip = targets.is_excluded(addr.ip());
        if skip && let Ok(mut list) = excluded.lock() {
            list.push(addr.ip());
        }
        // --source applies to its own family; an MX may publish both.
        let source = config
            .audit
            .session
            .source
            .filter(|s| s.is_ipv4() == addr.is_ipv4());
        async move {
            // An excluded address is never contacted; it counts as answering so that it
            // raises no finding.
            skip || discover::probe(
                addr,
                source,
                config.connect_timeout,
                config.filtered_retries,
                &config.pacer,
            )
            .await
                == PortState::Open
        }
    };
    // Registrations come with the registry (issue 4); until then every MX counts as registered.
    let checks = dns.mx_checks(zone, 25, &|_| true, probe).await;
    let mut notes = checks.inconclusive;
    for ip in excluded.into_inner().unwrap_or_default() {
        notes.push(format!("MX address {ip} is excluded and was not probed"));
    }
    ZoneReport {
        zone: zone.to_string(),
        findings: checks.findings,
        notes,
    }
}

fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

fn progress_bar(args: &SweepArgs, total: u128) -> Option<ProgressBar> {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} probed, {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    Some(bar)
}

fn spawn_ticker(bar: ProgressBar, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let started = std::time::Instant::now();
        loop {
            tick.tick().await;
            let probed = progress.probed.load(Ordering::Relaxed);
            bar.set_position(probed);
            let rate = probed as f64 / started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{rate:.0}/s, {} open, {} audited, {} findings",
                progress.open.load(Ordering::Relaxed),
                progress.audited.load(Ordering::Relaxed),
                progress.findings.load(Ordering::Relaxed)
            ));
        }
    })
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
