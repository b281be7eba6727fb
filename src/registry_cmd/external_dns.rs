//! `export external-dns`: transfers the internal zones (AXFR, the scanner's DNS module) and
//! writes their external view ([`relayguard_registry::export::external_dns`]) for the external
//! name servers.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use hickory_resolver::proto::serialize::binary::BinEncodable;
use relayguard_registry::Store;
use relayguard_registry::export::external_dns::{
    Gateway, InternalZone, RecordData, Soa, ZoneRecord, check_name, write_zones,
};
use relayguard_scanner::dns::{AxfrOptions, DnsConfig, axfr};

/// `export external-dns`
#[derive(Debug, Args)]
pub struct ExternalDnsArgs {
    /// An internal zone to publish (repeatable).
    #[arg(long = "zone", value_name = "ZONE", required = true)]
    pub zones: Vec<String>,
    /// A gateway MX as NAME:PREFERENCE, e.g. mx1.example.ac.jp:10 (repeatable: primary, backup).
    #[arg(long = "gateway", value_name = "NAME:PREF", required = true)]
    pub gateways: Vec<String>,
    /// Directory the zone files (ZONE.zone) and the serial state are written to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The internal name server that allows the transfers: ADDR, ADDR:PORT or [V6ADDR]:PORT
    /// (repeatable; asked in order). Required: the zones' public NS records may well name the
    /// external servers this command writes for.
    #[arg(long = "server", value_name = "ADDR", required = true)]
    pub servers: Vec<String>,
    /// Seconds allowed for one zone transfer.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// Runs `export external-dns`.
pub async fn run(
    store: &Store,
    args: ExternalDnsArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let gateways = args
        .gateways
        .iter()
        .map(|g| g.parse::<Gateway>())
        .collect::<Result<Vec<_>, _>>()?;
    let servers = args
        .servers
        .iter()
        .map(|s| DnsConfig::parse_server(s).map_err(|e| anyhow::anyhow!("--server: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut zone_names = Vec::new();
    for z in &args.zones {
        let name = z.trim().trim_end_matches('.').to_ascii_lowercase();
        check_name(&name).map_err(|why| anyhow::anyhow!("invalid zone {z:?}: {why}"))?;
        if !zone_names.contains(&name) {
            zone_names.push(name);
        }
    }
    let options = AxfrOptions {
        servers: servers.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        ..AxfrOptions::default()
    };
    // Every zone is transferred before anything is written.
    let mut zones = Vec::new();
    for name in &zone_names {
        let mut failures = Vec::new();
        let mut got = None;
        for server in &servers {
            match axfr(*server, name, &options).await {
                Ok((_, records)) => {
                    got =
                        Some(internal_zone(name, &records).with_context(|| {
                            format!("zone {name} as transferred from {server}")
                        })?);
                    break;
                }
                Err(e) => failures.push(format!("from {server}: {e}")),
            }
        }
        let zone = got.ok_or_else(|| {
            anyhow::anyhow!(
                "zone {name} did not transfer ({}); nothing was written",
                failures.join("; ")
            )
        })?;
        zones.push(zone);
    }
    let hosts = store.list_hosts().await?;
    let written = write_zones(&args.out, &zones, &hosts, &gateways)?;
    for w in written {
        writeln!(
            out,
            "{}: serial {} ({}) {}",
            w.zone,
            w.serial,
            if w.changed { "changed" } else { "unchanged" },
            w.path.display()
        )?;
        for note in w.notes {
            writeln!(out, "  note: {note}")?;
        }
    }
    Ok(())
}

/// Lower case without the trailing dot.
fn plain(name: &hickory_resolver::proto::rr::Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The records of a transfer as the registry's view reads them.
fn internal_zone(origin: &str, records: &[Record]) -> anyhow::Result<InternalZone> {
    let soa = records
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(s) if plain(&r.name) == origin => Some(Soa {
                ttl: r.ttl,
                mname: s.mname.to_ascii(),
                rname: s.rname.to_ascii(),
                serial: s.serial,
                refresh: s.refresh,
                retry: s.retry,
                expire: s.expire,
                minimum: s.minimum,
            }),
            _ => None,
        })
        .context("no SOA for the zone's apex")?;
    let mut out = Vec::new();
    for r in records {
        let data = match &r.data {
            RData::SOA(_) => continue,
            RData::A(a) => RecordData::Address(a.0.into()),
            RData::AAAA(a) => RecordData::Address(a.0.into()),
            RData::MX(mx) => RecordData::Mx {
                preference: mx.preference,
                exchange: plain(&mx.exchange),
            },
            RData::TXT(txt) => RecordData::Other {
                rtype: "TXT".into(),
                rdata: txt
                    .txt_data
                    .iter()
                    .map(|s| quoted(s))
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            RData::NS(_) | RData::CNAME(_) | RData::PTR(_) | RData::SRV(_) => RecordData::Other {
                rtype: r.record_type().to_string(),
                rdata: r.data.to_string(),
            },
            other => {
                // Everything else in the generic form of RFC 3597, which every server reads.
                let bytes = other
                    .to_bytes()
                    .map_err(|e| anyhow::anyhow!("encoding a {} record: {e}", r.record_type()))?;
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                RecordData::Other {
                    rtype: format!("TYPE{}", u16::from(r.record_type())),
                    rdata: if bytes.is_empty() {
                        "\\# 0".into()
                    } else {
                        format!("\\# {} {hex}", bytes.len())
                    },
                }
            }
        };
        if r.record_type() == RecordType::OPT {
            continue;
        }
        out.push(ZoneRecord {
            name: plain(&r.name),
            ttl: r.ttl,
            data,
        });
    }
    Ok(InternalZone {
        origin: origin.to_string(),
        soa,
        records: out,
    })
}

/// A character-string for a zone file: quoted, with `"`, `\` and unprintable bytes escaped.
fn quoted(s: &[u8]) -> String {
    let mut q = String::from("\"");
    for &b in s {
        match b {
            b'"' | b'\\' => {
                q.push('\\');
                q.push(b as char);
            }
            0x20..=0x7e => q.push(b as char),
            _ => q.push_str(&format!("\\{b:03}")),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn character_strings_are_escaped_for_zone_files() {
        assert_eq!(quoted(b"v=spf1 -all"), "\"v=spf1 -all\"");
        assert_eq!(quoted(b"a\"b\\c\n\xff"), "\"a\\\"b\\\\c\\010\\255\"");
    }
}
