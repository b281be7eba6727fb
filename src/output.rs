//! Writing sweep results: table, JSON, JSON Lines and CSV.

use std::borrow::Borrow;
use std::io::{self, Write};

use relayguard_core::Finding;
use relayguard_core::scan::{HostResult, PortState};
use serde::Serialize;

/// Counts over the whole sweep.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Addresses in the target set (exclusions applied).
    pub addresses: u128,
    /// Address/port pairs probed.
    pub probed: u64,
    /// Open ports.
    pub open: u64,
    /// Closed ports.
    pub closed: u64,
    /// Filtered ports.
    pub filtered: u64,
    /// Findings.
    pub findings: u64,
}

/// The DNS checks of one campus zone (`--zone`).
#[derive(Debug, Clone, Serialize)]
pub struct ZoneReport {
    /// The zone.
    pub zone: String,
    /// What is wrong with its MX records.
    pub findings: Vec<Finding>,
    /// Lookups and probes that gave no answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The JSON document of a sweep; `H` serializes as the sequence of results (a slice, or the
/// results read back from their file one at a time).
#[derive(Debug, Serialize)]
pub struct Report<'a, H> {
    /// relayguard's version.
    pub relayguard_version: &'static str,
    /// When the sweep started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
    /// True when the sweep was stopped (Ctrl-C) before it finished.
    pub interrupted: bool,
    /// The counts.
    pub summary: &'a Summary,
    /// One entry per reported address and port, sorted.
    pub hosts: H,
    /// One entry per `--zone`.
    #[serde(skip_serializing_if = "<[ZoneReport]>::is_empty")]
    pub zones: &'a [ZoneReport],
}

/// Writes one JSON Lines record.
pub fn write_jsonl(out: &mut dyn Write, host: &HostResult) -> io::Result<()> {
    serde_json::to_writer(&mut *out, host)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes the whole report as one JSON document.
pub fn write_json<H: Serialize>(out: &mut dyn Write, report: &Report<'_, H>) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    out.write_all(b"\n")
}

/// Writes one CSV row per finding; hosts without findings get one row with empty finding columns.
/// Zone findings follow, with the zone in the address column and `dns` as the state.
pub fn write_csv<H: Borrow<HostResult>>(
    out: &mut dyn Write,
    hosts: impl IntoIterator<Item = H>,
    zones: &[ZoneReport],
) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "address", "port", "state", "mta", "kind", "severity", "summary", "error",
    ])?;
    for h in hosts {
        let h = h.borrow();
        let mta = h.smtp.as_ref().map_or("", |s| s.mta.as_str());
        let address = h.address.to_string();
        let port = h.port.to_string();
        let error = h.error.as_deref().unwrap_or("");
        if h.findings.is_empty() {
            w.write_record([&address, &port, h.state.as_str(), mta, "", "", "", error])?;
        }
        for f in &h.findings {
            w.write_record([
                &address,
                &port,
                h.state.as_str(),
                mta,
                f.kind.id(),
                f.severity.as_str(),
                &f.summary,
                error,
            ])?;
        }
    }
    for z in zones {
        for f in &z.findings {
            w.write_record([
                z.zone.as_str(),
                "",
                "dns",
                "",
                f.kind.id(),
                f.severity.as_str(),
                &f.summary,
                "",
            ])?;
        }
    }
    w.flush()
}

/// Writes a table for people: one line per port, findings beneath; then the zones.
pub fn write_table<H: Borrow<HostResult>>(
    out: &mut dyn Write,
    hosts: impl IntoIterator<Item = H>,
    zones: &[ZoneReport],
    summary: &Summary,
) -> io::Result<()> {
    writeln!(
        out,
        "{:<39} {:>5} {:<8} {:<10} {:<5} FINDINGS",
        "ADDRESS", "PORT", "STATE", "MTA", "TLS"
    )?;
    for h in hosts {
        let h = h.borrow();
        let (mta, tls) = match &h.smtp {
            Some(s) => (
                s.mta.as_str(),
                match &s.tls {
                    Some(t) if t.established && t.certificate_valid => "ok",
                    Some(t) if t.established => "weak",
                    Some(_) => "fail",
                    None => "none",
                },
            ),
            None if h.state == PortState::Open => ("?", "-"),
            None => ("", ""),
        };
        let kinds: Vec<String> = h
            .findings
            .iter()
            .map(|f| format!("{}({})", f.kind, f.severity))
            .collect();
        writeln!(
            out,
            "{:<39} {:>5} {:<8} {:<10} {:<5} {}",
            h.address,
            h.port,
            h.state.as_str(),
            mta,
            tls,
            if kinds.is_empty() {
                "-".to_string()
            } else {
                kinds.join(" ")
            }
        )?;
        if let Some(e) = &h.error {
            writeln!(out, "    ! {e}")?;
        }
        for f in &h.findings {
            writeln!(out, "    {}: {}", f.kind, f.summary)?;
        }
        for n in &h.notes {
            writeln!(out, "    ? {n}")?;
        }
    }
    for z in zones {
        writeln!(out, "\nzone {}: {} findings", z.zone, z.findings.len())?;
        for f in &z.findings {
            writeln!(out, "    {}({}): {}", f.kind, f.severity, f.summary)?;
        }
        for n in &z.notes {
            writeln!(out, "    ? {n}")?;
        }
    }
    writeln!(
        out,
        "\n{} addresses, {} ports probed: {} open, {} closed, {} filtered; {} findings",
        summary.addresses,
        summary.probed,
        summary.open,
        summary.closed,
        summary.filtered,
        summary.findings
    )
}
