//! DNS checks of campus mail servers: reverse DNS, DNS blocklists, MX consistency and targets
//! taken from DNS.
//!
//! Everything goes through one [`Dns`] handle, built from a plain-data [`DnsConfig`] (which
//! resolvers, timeout, attempts, cache size, how many lookups in flight). Lookup failures are
//! mapped to [`DnsError`] (`NotFound`, `ServFail`, `Timeout`, `Other`); nothing here panics on
//! what the network sends.
//!
//! The checks return [`relayguard_core::Finding`]s whose evidence transcript holds the queries
//! and answers as [`relayguard_core::Direction::Note`] lines (session 0), e.g.
//! `PTR 10.0.0.127.in-addr.arpa. -> mx.campus.test.`. A lookup that failed (timeout, SERVFAIL)
//! never becomes a finding: it is reported in the `inconclusive` list of the result instead.
//!
//! | check | function | findings |
//! |---|---|---|
//! | reverse DNS of an SMTP host | [`Dns::reverse_checks`] | `no-ptr`, `ptr-not-confirmed`, `generic-ptr` |
//! | DNS blocklists | [`Dns::dnsbl_checks`] | `dnsbl-listed` |
//! | MX of a campus zone | [`Dns::mx_checks`] | `mx-unregistered`, `mx-not-answering`, `mx-ipv6-unreachable` |
//! | a registration (name, address) | [`Dns::registration_dns_check`] | `registration-dns-mismatch` |
//! | targets from a zone | [`Dns::targets_from_zone`] (+ AXFR via [`axfr`], serials in [`SerialState`]) | — |
//!
//! Generic/dynamic PTR patterns (S25R style) are data: `rules/generic-ptr.yaml`, compiled in and
//! replaceable with [`GenericPtrRules::from_yaml`].
//!
//! Reverse lookups of loopback addresses (127.0.0.0/8, `::1`) never reach a server: hickory
//! answers them itself with `localhost` (RFC 6761). Sweeps never target loopback, so this only
//! matters to tests, whose reverse records use TEST-NET and ULA addresses.
//!
//! ```no_run
//! use std::net::{IpAddr, SocketAddr};
//! use std::time::Duration;
//! use relayguard_scanner::dns::{AxfrOptions, Dns, DnsConfig, SerialState};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // --resolver 127.0.0.1:5300 (none: /etc/resolv.conf)
//! let config = DnsConfig::with_servers(vec![DnsConfig::parse_server("127.0.0.1:5300")?]);
//! let dns = Dns::new(&config)?; // .with_rules(rule_set) for severities from rules/
//! let host: IpAddr = "192.0.2.10".parse()?;
//!
//! // Per SMTP host found by the sweep.
//! let reverse = dns.reverse_checks(host).await; // reverse.ptr, reverse.checks.findings
//! let listed = dns.dnsbl_checks(host, &["dnsbl.example".to_string()]).await;
//!
//! // Per campus zone (--zone): pass the registry test and the scanner's SMTP connect.
//! let registered = |ip: IpAddr| ip == host;
//! let probe = |addr: SocketAddr| async move {
//!     tokio::net::TcpStream::connect(addr).await.is_ok()
//! };
//! let mx = dns.mx_checks("campus.example", 25, &registered, probe).await;
//!
//! // Targets from DNS (--from-dns), with zone transfer and remembered serials.
//! let mut state = SerialState::load("serials.json".as_ref())?;
//! let axfr = AxfrOptions { timeout: Duration::from_secs(30), ..AxfrOptions::default() };
//! let zone = dns.targets_from_zone("campus.example", Some(&axfr), Some(&mut state)).await;
//! state.save()?;
//! # let _ = (reverse, listed, mx, zone);
//! # Ok(())
//! # }
//! ```

mod dnsbl;
mod mx;
mod names;
mod ptr;
mod resolver;
mod zone;

pub use dnsbl::{DnsblAnswer, MIYAZAKI_2007_EXAMPLE_ZONES};
pub use names::{dnsbl_query_name, reverse_name};
pub use ptr::{GenericPtrMatch, GenericPtrRules, GenericPtrRulesError};
pub use resolver::{Dns, DnsConfig, DnsError};
pub use zone::{
    AxfrError, AxfrOptions, DnsTarget, SerialState, TargetSource, ZoneTargets, axfr, soa_serial_tcp,
};

use relayguard_core::{Direction, Evidence, Finding, FindingKind, TranscriptLine};

/// What one check found: findings, and the lookups that failed so nothing could be concluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsChecks {
    /// The findings, each with its DNS queries and answers as evidence.
    pub findings: Vec<Finding>,
    /// One line per lookup that failed (timeout, SERVFAIL, ...): not a finding, but worth a note.
    pub inconclusive: Vec<String>,
}

/// The result of [`Dns::reverse_checks`]: the PTR name (if any) and the findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReverseChecks {
    /// The first PTR name, without the trailing dot (e.g. `mx.campus.test`).
    pub ptr: Option<String>,
    /// Findings and failed lookups.
    pub checks: DnsChecks,
}

/// Collects the query/answer lines of one check, timed from its start.
#[derive(Debug)]
pub(crate) struct DnsLog {
    start: std::time::Instant,
    lines: Vec<TranscriptLine>,
}

impl DnsLog {
    pub(crate) fn new() -> Self {
        DnsLog {
            start: std::time::Instant::now(),
            lines: Vec::new(),
        }
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::debug!(target: "relayguard::dns", "{text}");
        self.lines.push(TranscriptLine {
            session: 0,
            ms: u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX),
            dir: Direction::Note,
            text,
        });
    }

    pub(crate) fn lines(&self) -> Vec<TranscriptLine> {
        self.lines.clone()
    }
}

/// Builds a finding with the severity the handle's rules give the kind.
pub(crate) fn finding(
    dns: &Dns,
    kind: FindingKind,
    summary: String,
    transcript: Vec<TranscriptLine>,
) -> Finding {
    Finding {
        kind,
        severity: dns.severity(kind),
        summary,
        evidence: Evidence {
            transcript,
            ..Evidence::default()
        },
    }
}

/// Formats a name without its trailing dot, lower-cased.
pub(crate) fn plain(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
