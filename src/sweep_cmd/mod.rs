//! `relayguard sweep`: prepares the sweep from the arguments, runs it, writes the results.

mod kept;
mod progress;
pub mod setup;
mod zones;

use std::borrow::Borrow;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use relayguard_core::scan::HostResult;
use relayguard_core::{SweepMeta, exit};
use relayguard_registry::{Store, record_sweep};
use relayguard_scanner::confirm::ConfirmConfig;
use relayguard_scanner::confirm::sink::Sink;
use relayguard_scanner::{Progress, SweepConfig, TargetSet, sweep};
use tokio::sync::mpsc;

use crate::cli::{Format, SweepArgs};
use crate::output::{self, Report, Summary};
use kept::{HostsOf, Kept, KeptResults};

/// Runs the sweep, records it in the registry at `database` and returns the exit code.
pub async fn run(args: SweepArgs, database: &str) -> anyhow::Result<u8> {
    if args.queue {
        return crate::queue_cmd::plan(&args, database).await;
    }
    let [vantage] = args.vantage.as_slice() else {
        anyhow::bail!("more than one --vantage needs --queue: one process sweeps from one place");
    };
    let vantage = vantage.clone();
    let prepared = setup::prepare(&args).await?;
    let mut out = open_output(args.output.as_deref())?;
    if args.list_targets {
        for t in prepared.targets.iter() {
            match &t.name {
                Some(name) => writeln!(out, "{}\t{name}", t.ip)?,
                None => writeln!(out, "{}", t.ip)?,
            }
        }
        out.flush()?;
        return Ok(0);
    }
    // The local registry, opened before the sweep so a bad --database fails fast. It derives
    // its own findings with the sweep's rules, so --rules severities apply there too.
    let store = if args.no_store || args.discover_only || args.registry.is_some() {
        None
    } else {
        Some(
            Store::open(database)
                .await
                .with_context(|| format!("opening the registry database {database}"))?
                .with_rules(Arc::new(prepared.rules.clone())),
        )
    };
    let dns = prepared.dns.clone();
    let config = setup::sweep_config(&args, prepared.rules, prepared.dns)?;
    // The sink listens from the start, so that a wrong address fails before any traffic.
    let sink = match (args.confirm, args.confirm_sink) {
        (true, Some(addr)) => Some(Sink::bind(addr).await.with_context(|| {
            format!("--confirm-sink {addr}: cannot listen there (it must be one of this machine's own addresses)")
        })?),
        _ => None,
    };
    let targets = prepared.targets;
    let addresses = targets.len();
    let coverage = targets.coverage();

    let started = time::OffsetDateTime::now_utc();
    let started_at = rfc3339(started);
    let progress = Arc::new(Progress::default());
    let bar = progress::progress_bar(&args, addresses.saturating_mul(args.ports.len() as u128));
    let ticker = bar
        .clone()
        .map(|bar| progress::spawn_ticker(bar, progress.clone()));
    let (kept, finished) = collect(&args, targets, config, progress.clone(), &mut out).await?;
    // An upload and --confirm (which adds to them) need the results whole in memory. Otherwise
    // every output and the local registry read the results back from the file one at a time
    // (the table and the CSV without transcripts).
    let whole = args.registry.is_some() || sink.is_some();
    let mut hosts = if whole { kept.all()? } else { Vec::new() };
    if let (Some(sink), Some((_, config))) = (&sink, &finished) {
        let confirm = ConfirmConfig {
            max_per_host: args.confirm_max,
            wait: std::time::Duration::from_secs_f64(args.confirm_wait),
            domain: args.confirm_domain.clone(),
        };
        relayguard_scanner::confirm::confirm(
            &mut hosts,
            sink,
            &config.audit,
            &config.pacer,
            &confirm,
        )
        .await;
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    // Zone checks only after a sweep that ran to its end.
    let mut zone_reports = Vec::new();
    if let (Some((targets, config)), Some(dns)) = (&finished, &dns)
        && !args.zone.is_empty()
    {
        let registrations = match &store {
            Some(store) => Some(store.list_hosts().await.context("reading registrations")?),
            None => None,
        };
        for zone in &args.zone {
            let report =
                zones::check_zone(zone, &dns.dns, targets, config, registrations.as_deref()).await;
            zone_reports.push(report);
        }
    }
    let interrupted = finished.is_none();
    let summary = Summary {
        addresses,
        probed: progress.probed.load(Ordering::Relaxed),
        open: progress.open.load(Ordering::Relaxed),
        closed: progress.closed.load(Ordering::Relaxed),
        filtered: progress.filtered.load(Ordering::Relaxed),
        findings: progress.findings.load(Ordering::Relaxed)
            + zone_reports
                .iter()
                .map(|z| z.findings.len() as u64)
                .sum::<u64>(),
    };
    match args.format {
        Format::Jsonl => {}
        Format::Json => {
            let report = |hosts| Report {
                relayguard_version: env!("CARGO_PKG_VERSION"),
                started_at: started_at.clone(),
                finished_at: rfc3339(time::OffsetDateTime::now_utc()),
                interrupted,
                summary: &summary,
                hosts,
                zones: &zone_reports,
            };
            if whole {
                output::write_json(&mut out, &report(HostsOf::Memory(&hosts)))?;
            } else {
                output::write_json(&mut out, &report(HostsOf::File(&kept)))?;
            }
        }
        Format::Csv | Format::Table if whole => {
            write_rows(&mut out, args.format, &hosts, &zone_reports, &summary)?;
        }
        Format::Csv | Format::Table => {
            let mut unreadable = None;
            let slim = kept
                .each_without_transcript()
                .map_while(|r| r.map_err(|e| unreadable = Some(e)).ok());
            write_rows(&mut out, args.format, slim, &zone_reports, &summary)?;
            if let Some(e) = unreadable {
                return Err(e);
            }
        }
    }
    out.flush()?;
    if !args.no_store {
        if interrupted {
            eprintln!("relayguard: an interrupted sweep is not recorded in the registry");
        } else {
            let meta = SweepMeta {
                vantage,
                targets: coverage,
                ports: args.ports.clone(),
                started_at: started.unix_timestamp(),
                finished_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            };
            match &args.registry {
                Some(url) => {
                    let token = args
                        .token
                        .clone()
                        .or_else(|| std::env::var("RELAYGUARD_TOKEN").ok())
                        .filter(|t| !t.is_empty())
                        .context("--registry needs --token or $RELAYGUARD_TOKEN")?;
                    crate::upload::post_sweep(
                        url,
                        &token,
                        args.registry_ca.as_deref(),
                        &meta,
                        &hosts,
                    )
                    .await?;
                }
                None => {
                    if let Some(store) = &store {
                        if whole {
                            record_sweep(store, &meta, &hosts).await
                        } else {
                            drop(hosts);
                            store.record_sweep_each(&meta, kept.each()).await
                        }
                        .context("recording the sweep in the registry")?;
                    }
                }
            }
        }
    }
    Ok(if interrupted {
        exit::INTERRUPTED
    } else if summary.findings > 0 {
        exit::ATTENTION
    } else {
        exit::OK
    })
}

/// Writes the table or the CSV of `hosts` (nothing for the JSON formats).
fn write_rows<H: Borrow<HostResult>>(
    out: &mut dyn Write,
    format: Format,
    hosts: impl IntoIterator<Item = H>,
    zones: &[output::ZoneReport],
    summary: &Summary,
) -> std::io::Result<()> {
    match format {
        Format::Csv => output::write_csv(out, hosts, zones),
        Format::Table => output::write_table(out, hosts, zones, summary),
        Format::Json | Format::Jsonl => Ok(()),
    }
}

/// Runs the sweep until it ends or Ctrl-C, streaming JSON Lines as results come, and keeping
/// them for the other formats and the registry. Returns the results, sorted, and the targets
/// and configuration back when the sweep ran to its end (`None` when interrupted).
async fn collect(
    args: &SweepArgs,
    targets: TargetSet,
    config: SweepConfig,
    progress: Arc<Progress>,
    out: &mut Box<dyn Write + Send>,
) -> anyhow::Result<(Kept, Option<(TargetSet, SweepConfig)>)> {
    let (tx, mut rx) = mpsc::channel::<HostResult>(256);
    let task = tokio::spawn(async move {
        sweep::run(&targets, &config, progress, tx).await;
        (targets, config)
    });
    let mut kept = KeptResults::new()?;
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(host) => {
                    if args.format == Format::Jsonl {
                        output::write_jsonl(out, &host)?;
                    }
                    kept.keep(host)?;
                }
                None => break,
            },
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                task.abort();
                eprintln!("relayguard: interrupted; writing the results gathered so far");
            }
        }
    }
    // An aborted task ends in a cancellation error: the sweep did not finish.
    Ok((kept.finish()?, task.await.ok()))
}

fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
