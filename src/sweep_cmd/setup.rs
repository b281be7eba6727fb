//! Turning `sweep` arguments into a target set and a sweep configuration, validating every value
//! before anything is sent.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use relayguard_core::rules::RuleSet;
use relayguard_scanner::audit::DnsAudit;
use relayguard_scanner::dns::{AxfrOptions, Dns, DnsConfig, GenericPtrRules, SerialState};
use relayguard_scanner::smtp::tls::load_pem_certificates;
use relayguard_scanner::smtp::{SessionConfig, TlsSetup};
use relayguard_scanner::targets::{self, TargetSet};
use relayguard_scanner::{AuditConfig, Pacer, SweepConfig};

use crate::cli::{Format, SweepArgs};

/// Descriptors kept free for everything that is not a discovery connection.
const RESERVED_FILES: u64 = 64;

/// Everything a sweep needs, built from the arguments.
pub struct Prepared {
    /// The addresses, exclusions applied.
    pub targets: TargetSet,
    /// The DNS checks, unless `--no-dns`.
    pub dns: Option<DnsAudit>,
    /// The rules.
    pub rules: RuleSet,
}

/// Validates the arguments and builds the rules, the DNS set-up and the target set.
pub async fn prepare(args: &SweepArgs) -> anyhow::Result<Prepared> {
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
    if args.registry.is_some()
        && args.token.as_deref().unwrap_or_default().is_empty()
        && std::env::var("RELAYGUARD_TOKEN")
            .unwrap_or_default()
            .is_empty()
    {
        bail!("--registry needs --token or $RELAYGUARD_TOKEN");
    }
    if args.ports.is_empty() || args.ports.contains(&0) {
        bail!("--ports needs one or more ports between 1 and 65535");
    }
    if args.confirm {
        if args.format == Format::Jsonl {
            bail!(
                "--confirm revises verdicts after the sweep: use --format json, csv or table, not jsonl"
            );
        }
        if args.confirm_max == 0 {
            bail!("--confirm-max needs at least 1 message per host");
        }
        if !(args.confirm_wait.is_finite() && args.confirm_wait >= 0.0) {
            bail!("--confirm-wait needs a number of seconds");
        }
        if let Some(d) = &args.confirm_domain {
            check_token("--confirm-domain", d)?;
        }
    }
    let rules = RuleSet::load(args.rules.as_deref()).context("loading rules")?;
    let dns = dns_audit(args, &rules)?;
    let targets = build_targets(args, dns.as_ref().map(|d| &d.dns)).await?;
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
    Ok(Prepared {
        targets,
        dns,
        rules,
    })
}

/// The sweep configuration: TLS set-up, concurrency fitted to the open-file limit, timeouts.
pub fn sweep_config(
    args: &SweepArgs,
    rules: RuleSet,
    dns: Option<DnsAudit>,
) -> anyhow::Result<SweepConfig> {
    let extra_roots = load_pem_certificates(&args.tls_ca).map_err(anyhow::Error::msg)?;
    let tls = TlsSetup::new(extra_roots).context("setting up TLS")?;
    let open_files = relayguard_scanner::raise_open_file_limit().unwrap_or(1024);
    // Audits get at most a quarter of the open files (each host up to --sessions-per-host
    // sockets), discovery what is left: under a low limit both shrink rather than discovery alone.
    let sessions = args.sessions_per_host.max(1) as u64;
    let audit_concurrency = (args.audit_concurrency as u64)
        .min(open_files.saturating_sub(RESERVED_FILES) / 4 / sessions)
        .max(1) as usize;
    let audit_files = audit_concurrency as u64 * sessions;
    let room = open_files
        .saturating_sub(RESERVED_FILES + audit_files)
        .max(16);
    let concurrency = (args.concurrency as u64).min(room) as usize;
    if concurrency < args.concurrency || audit_concurrency < args.audit_concurrency {
        tracing::warn!(
            concurrency,
            audit_concurrency,
            open_files,
            "concurrency lowered to fit the open-file limit"
        );
    }
    let connect_timeout = seconds("--connect-timeout", args.connect_timeout)?;
    Ok(SweepConfig {
        ports: args.ports.clone(),
        concurrency,
        audit_concurrency,
        connect_timeout,
        filtered_retries: args.retries,
        report_unreachable: args.all,
        discover_only: args.discover_only,
        pacer: Arc::new(Pacer::new(Some(args.rate))),
        audit: Arc::new(AuditConfig {
            all_vectors: args.all_vectors,
            session: SessionConfig {
                ehlo_name: args.ehlo_name.clone(),
                connect_timeout,
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
            // Zero is allowed: never retry.
            greylist_wait: Duration::try_from_secs_f64(args.greylist_wait).with_context(|| {
                format!(
                    "--greylist-wait must be a number of seconds, not {}",
                    args.greylist_wait
                )
            })?,
            rules: Arc::new(rules),
            dns,
        }),
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
        let path = dir.join(relayguard_core::rules::GENERIC_PTR_FILE);
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
    if !args.allow_special {
        // Before anything is resolved or sent: a target wholly inside a special-purpose range
        // is a mistake worth stopping for; a block that overlaps one loses only that part.
        for cut in targets::check_special(&specs)? {
            eprintln!("relayguard: note: {cut}");
        }
        exclusions.extend(targets::special_exclusions());
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
