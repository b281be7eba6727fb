//! Targets from DNS: A/AAAA of a zone's MX targets and apex, and of every host name in the zone
//! when its server allows a zone transfer (AXFR), with SOA serials remembered so that an
//! unchanged zone is not transferred again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::plain;
use super::resolver::{Dns, DnsError};

/// Where a target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetSource {
    /// An MX target of the zone.
    Mx,
    /// The zone's own (apex) A/AAAA.
    Host,
    /// An A/AAAA record found by zone transfer.
    Axfr,
}

/// One address to sweep, with the name DNS gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DnsTarget {
    /// The address.
    pub ip: IpAddr,
    /// The owner name, without trailing dot.
    pub name: String,
    /// How it was found.
    pub source: TargetSource,
}

/// The result of [`Dns::targets_from_zone`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneTargets {
    /// Distinct (address, name) pairs, MX targets first.
    pub targets: Vec<DnsTarget>,
    /// Lookups or transfers that failed (e.g. `AXFR refused`), one line each.
    pub inconclusive: Vec<String>,
    /// The SOA serial of the zone when a transfer was tried and the serial was read.
    pub serial: Option<u32>,
    /// Whether the zone was transferred this time (false when the serial was unchanged).
    pub transferred: bool,
}

/// How to transfer zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxfrOptions {
    /// Servers to ask, in order, until one allows the transfer. Empty: the zone's NS hosts on
    /// port 53.
    pub servers: Vec<SocketAddr>,
    /// Deadline for the whole transfer from one server.
    pub timeout: Duration,
    /// The most records accepted from one transfer.
    pub max_records: usize,
}

impl Default for AxfrOptions {
    fn default() -> Self {
        AxfrOptions {
            servers: Vec::new(),
            timeout: Duration::from_secs(30),
            max_records: 1_000_000,
        }
    }
}

/// Why a zone transfer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AxfrError {
    /// The server answered with an error code (REFUSED, NOTAUTH, SERVFAIL, ...).
    #[error("server answered {0}")]
    Refused(String),
    /// The transfer did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The connection failed.
    #[error("{0}")]
    Io(String),
    /// The server sent something that is not a well-formed transfer.
    #[error("malformed transfer: {0}")]
    Malformed(String),
    /// More records than allowed.
    #[error("more than {0} records")]
    TooLarge(usize),
}

impl From<std::io::Error> for AxfrError {
    fn from(e: std::io::Error) -> Self {
        AxfrError::Io(e.to_string())
    }
}

/// The mnemonic of a response code as in dig's output: `REFUSED`, `NOTAUTH`, `SERVFAIL`.
pub(crate) fn rcode_name(code: ResponseCode) -> String {
    format!("{code:?}").to_ascii_uppercase()
}

/// Sends one query over a TCP connection and reads replies until `done` says so.
async fn tcp_exchange(
    server: SocketAddr,
    zone: &str,
    rtype: RecordType,
    max_records: usize,
    mut done: impl FnMut(&Message) -> bool,
) -> Result<Vec<Record>, AxfrError> {
    let fqdn = format!("{}.", plain(zone));
    let name = Name::from_ascii(&fqdn)
        .map_err(|e| AxfrError::Malformed(format!("invalid zone {fqdn:?}: {e}")))?;
    let mut query = Message::query();
    query.add_query(Query::query(name, rtype));
    query.metadata.recursion_desired = false;
    let id = query.metadata.id;
    let bytes = query
        .to_vec()
        .map_err(|e| AxfrError::Malformed(format!("encoding query: {e}")))?;
    let len =
        u16::try_from(bytes.len()).map_err(|_| AxfrError::Malformed("query too long".into()))?;
    let mut stream = TcpStream::connect(server).await?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(&bytes).await?;
    let mut records = Vec::new();
    loop {
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        let msg =
            Message::from_vec(&buf).map_err(|e| AxfrError::Malformed(format!("decoding: {e}")))?;
        if msg.metadata.id != id {
            return Err(AxfrError::Malformed(
                "reply id does not match the query".into(),
            ));
        }
        if msg.metadata.response_code != ResponseCode::NoError {
            return Err(AxfrError::Refused(rcode_name(msg.metadata.response_code)));
        }
        let finished = done(&msg);
        records.extend(msg.answers);
        if records.len() > max_records {
            return Err(AxfrError::TooLarge(max_records));
        }
        if finished {
            return Ok(records);
        }
    }
}

/// Reads a zone's SOA serial straight from `server` over TCP (the server that would be asked
/// for the transfer, so the serial and the data agree).
pub async fn soa_serial_tcp(
    server: SocketAddr,
    zone: &str,
    timeout: Duration,
) -> Result<u32, AxfrError> {
    let records = tokio::time::timeout(
        timeout,
        tcp_exchange(server, zone, RecordType::SOA, 100, |_| true),
    )
    .await
    .map_err(|_| AxfrError::Timeout)??;
    records
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        })
        .ok_or_else(|| AxfrError::Malformed("no SOA in the answer (not authoritative?)".into()))
}

/// Transfers `zone` from `server` (AXFR over TCP) and returns its SOA serial and all records.
pub async fn axfr(
    server: SocketAddr,
    zone: &str,
    options: &AxfrOptions,
) -> Result<(u32, Vec<Record>), AxfrError> {
    let mut soas = 0usize;
    let mut messages = 0usize;
    let exchange = tcp_exchange(server, zone, RecordType::AXFR, options.max_records, |msg| {
        messages += 1;
        soas += msg
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count();
        // A transfer is framed by the SOA at its start and end; an empty first message or a
        // runaway server ends the exchange.
        soas >= 2 || msg.answers.is_empty() || messages > options.max_records
    });
    let records = tokio::time::timeout(options.timeout, exchange)
        .await
        .map_err(|_| AxfrError::Timeout)??;
    let serial = match records.first().map(|r| &r.data) {
        Some(RData::SOA(s)) => s.serial,
        _ => {
            return Err(AxfrError::Malformed(
                "transfer does not start with SOA".into(),
            ));
        }
    };
    let closing = records
        .iter()
        .skip(1)
        .any(|r| r.record_type() == RecordType::SOA);
    if !closing {
        return Err(AxfrError::Malformed(
            "transfer ended before its closing SOA".into(),
        ));
    }
    Ok((serial, records))
}

/// What was remembered of one zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ZoneMemory {
    serial: u32,
    targets: Vec<DnsTarget>,
}

/// Remembered SOA serials and transferred targets, per zone, kept in a small JSON file so an
/// unchanged zone is not transferred again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SerialState {
    path: Option<PathBuf>,
    zones: BTreeMap<String, ZoneMemory>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    zones: BTreeMap<String, ZoneMemory>,
}

impl SerialState {
    /// Loads the state from `path` (a missing file is an empty state); [`SerialState::save`]
    /// writes it back there.
    pub fn load(path: &Path) -> std::io::Result<SerialState> {
        let zones = match std::fs::read(path) {
            Ok(bytes) => {
                let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                file.zones
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(SerialState {
            path: Some(path.to_path_buf()),
            zones,
        })
    }

    /// Writes the state atomically (temporary file, then rename); a no-op when in memory.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = StateFile {
            version: 1,
            zones: self.zones.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }

    /// The remembered serial of `zone`.
    pub fn serial(&self, zone: &str) -> Option<u32> {
        self.zones.get(&plain(zone)).map(|z| z.serial)
    }
}

fn address_targets(records: &[Record]) -> Vec<DnsTarget> {
    records
        .iter()
        .filter_map(|r| {
            let ip = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => return None,
            };
            Some(DnsTarget {
                ip,
                name: plain(&r.name.to_ascii()),
                source: TargetSource::Axfr,
            })
        })
        .collect()
}

impl Dns {
    /// Addresses to sweep from a zone: the A/AAAA of its MX targets and of its apex, and, when
    /// `axfr` is given, of every name in the zone by zone transfer from the first server that
    /// allows it. With `state`, a zone whose SOA serial equals the remembered one is not
    /// transferred again: the remembered targets are used (call [`SerialState::save`] after).
    pub async fn targets_from_zone(
        &self,
        zone: &str,
        axfr_options: Option<&AxfrOptions>,
        mut state: Option<&mut SerialState>,
    ) -> ZoneTargets {
        let zone = plain(zone);
        let mut out = ZoneTargets::default();
        let mut seen = BTreeSet::new();
        let mut push = |out: &mut ZoneTargets, t: DnsTarget| {
            if seen.insert((t.ip, t.name.clone())) {
                out.targets.push(t);
            }
        };

        match self.mx(&zone).await {
            Ok(mx) => {
                for (_, name) in mx.into_iter().filter(|(_, n)| !n.is_empty()) {
                    match self.addresses(&name).await {
                        Ok(addrs) => {
                            for ip in addrs {
                                let name = name.clone();
                                push(
                                    &mut out,
                                    DnsTarget {
                                        ip,
                                        name,
                                        source: TargetSource::Mx,
                                    },
                                );
                            }
                        }
                        Err(DnsError::NotFound) => {}
                        Err(e) => out.inconclusive.push(format!("A/AAAA {name}.: {e}")),
                    }
                }
            }
            Err(DnsError::NotFound) => {}
            Err(e) => out.inconclusive.push(format!("MX {zone}.: {e}")),
        }
        match self.addresses(&zone).await {
            Ok(addrs) => {
                for ip in addrs {
                    let name = zone.clone();
                    push(
                        &mut out,
                        DnsTarget {
                            ip,
                            name,
                            source: TargetSource::Host,
                        },
                    );
                }
            }
            Err(DnsError::NotFound) => {}
            Err(e) => out.inconclusive.push(format!("A/AAAA {zone}.: {e}")),
        }

        let Some(options) = axfr_options else {
            return out;
        };
        let servers = if options.servers.is_empty() {
            self.ns_servers(&zone, &mut out.inconclusive).await
        } else {
            options.servers.clone()
        };
        for server in servers {
            let serial = match soa_serial_tcp(server, &zone, options.timeout).await {
                Ok(serial) => serial,
                Err(e) => {
                    out.inconclusive
                        .push(format!("SOA {zone}. from {server}: {e}"));
                    continue;
                }
            };
            out.serial = Some(serial);
            let remembered = state
                .as_deref()
                .and_then(|s| s.zones.get(&zone))
                .filter(|z| z.serial == serial)
                .map(|z| z.targets.clone());
            if let Some(targets) = remembered {
                tracing::debug!(target: "relayguard::dns", "{zone}: serial {serial} unchanged, transfer skipped");
                for t in targets {
                    push(&mut out, t);
                }
                return out;
            }
            match axfr(server, &zone, options).await {
                Ok((serial, records)) => {
                    let targets = address_targets(&records);
                    if let Some(s) = state.as_deref_mut() {
                        s.zones.insert(
                            zone.clone(),
                            ZoneMemory {
                                serial,
                                targets: targets.clone(),
                            },
                        );
                    }
                    out.serial = Some(serial);
                    out.transferred = true;
                    for t in targets {
                        push(&mut out, t);
                    }
                    return out;
                }
                Err(e) => out
                    .inconclusive
                    .push(format!("AXFR {zone}. from {server}: {e}")),
            }
        }
        out
    }

    /// The addresses of a zone's NS hosts on port 53.
    async fn ns_servers(&self, zone: &str, problems: &mut Vec<String>) -> Vec<SocketAddr> {
        let ns = match self.lookup(zone, RecordType::NS).await {
            Ok(ns) => ns,
            Err(e) => {
                problems.push(format!("NS {zone}.: {e}"));
                return vec![];
            }
        };
        let mut out = Vec::new();
        for r in ns {
            if let RData::NS(n) = r {
                let host = plain(&n.0.to_ascii());
                match self.addresses(&host).await {
                    Ok(addrs) => out.extend(addrs.into_iter().map(|ip| SocketAddr::new(ip, 53))),
                    Err(e) => problems.push(format!("A/AAAA {host}. (NS of {zone}): {e}")),
                }
            }
        }
        out
    }
}
