//! MX consistency of campus zones, and registrations checked against DNS.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use relayguard_core::FindingKind;

use super::names::reverse_name;
use super::resolver::{Dns, DnsError};
use super::{DnsChecks, DnsLog, finding, plain};

impl Dns {
    /// Checks the MX records of a campus zone:
    /// - `mx-unregistered`: an address of an MX target for which `registered` is false (pass
    ///   the registry snapshot's "is a registered mail server" test);
    /// - `mx-not-answering`: an MX target with no address, or none of whose addresses answers
    ///   `probe` on `port` (pass the scanner's SMTP connect; 25 in production);
    /// - `mx-ipv6-unreachable`: an MX target that answers over IPv4 but not on one of its AAAA
    ///   addresses.
    ///
    /// `probe` is awaited once per address, one at a time. A zone without MX records gives no
    /// finding (mail then goes to the zone's A/AAAA, RFC 5321 §5.1); a null MX is noted.
    pub async fn mx_checks<P, Fut>(
        &self,
        zone: &str,
        port: u16,
        registered: &(dyn Fn(IpAddr) -> bool + Sync),
        probe: P,
    ) -> DnsChecks
    where
        P: Fn(SocketAddr) -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut out = DnsChecks::default();
        let zone = plain(zone);
        let mx = match self.mx(&zone).await {
            Ok(mx) => mx,
            Err(DnsError::NotFound) => return out,
            Err(e) => {
                out.inconclusive
                    .push(format!("MX {zone}.: {e}; MX of {zone} not checked"));
                return out;
            }
        };
        for (preference, name) in mx {
            let mut log = DnsLog::new();
            log.note(format!(
                "MX {zone}. -> {preference} {}",
                if name.is_empty() { "." } else { &name }
            ));
            if name.is_empty() {
                out.inconclusive.push(format!(
                    "{zone} publishes a null MX (RFC 7505): it accepts no mail"
                ));
                continue;
            }
            let addrs = match self.addresses(&name).await {
                Ok(addrs) => addrs,
                Err(DnsError::NotFound) => {
                    log.note(format!("A/AAAA {name}. -> no record (NXDOMAIN/NODATA)"));
                    out.findings.push(finding(
                        self,
                        FindingKind::MxNotAnswering,
                        format!("MX {name} of {zone} has no A/AAAA record: mail to {zone} cannot be delivered there"),
                        log.lines(),
                    ));
                    continue;
                }
                Err(e) => {
                    out.inconclusive
                        .push(format!("A/AAAA {name}. (MX of {zone}): {e}; not checked"));
                    continue;
                }
            };
            let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            log.note(format!("A/AAAA {name}. -> {}", shown.join(", ")));

            let unregistered: Vec<String> = addrs
                .iter()
                .filter(|ip| !registered(**ip))
                .map(ToString::to_string)
                .collect();
            if !unregistered.is_empty() {
                let mut lines = log.lines();
                let mut rlog = DnsLog::new();
                rlog.note(format!(
                    "registry: {} not registered as mail server",
                    unregistered.join(", ")
                ));
                lines.extend(rlog.lines());
                out.findings.push(finding(
                    self,
                    FindingKind::MxUnregistered,
                    format!(
                        "MX {name} of {zone} ({}) is not a registered mail server",
                        unregistered.join(", ")
                    ),
                    lines,
                ));
            }

            let mut answered = Vec::new();
            let mut silent = Vec::new();
            for ip in &addrs {
                let sa = SocketAddr::new(*ip, port);
                let ok = probe(sa).await;
                log.note(format!(
                    "SMTP probe {sa} -> {}",
                    if ok { "answered" } else { "no answer" }
                ));
                if ok {
                    answered.push(*ip);
                } else {
                    silent.push(*ip);
                }
            }
            if answered.is_empty() {
                out.findings.push(finding(
                    self,
                    FindingKind::MxNotAnswering,
                    format!(
                        "MX {name} of {zone} does not answer SMTP on port {port} ({})",
                        shown.join(", ")
                    ),
                    log.lines(),
                ));
                continue;
            }
            let silent_v6: Vec<String> = silent
                .iter()
                .filter(|ip| ip.is_ipv6())
                .map(ToString::to_string)
                .collect();
            if !silent_v6.is_empty() {
                out.findings.push(finding(
                    self,
                    FindingKind::MxIpv6Unreachable,
                    format!(
                        "MX {name} of {zone} publishes AAAA {} but does not answer SMTP there on port {port}; IPv6 senders will fail or delay",
                        silent_v6.join(", ")
                    ),
                    log.lines(),
                ));
            }
        }
        out
    }

    /// Checks one registration (host `name` registered with address `ip`) against DNS:
    /// `registration-dns-mismatch` when `name` does not exist or does not resolve to `ip`, or
    /// when `ip` has PTR records none of which is `name`. Failed lookups are inconclusive.
    pub async fn registration_dns_check(&self, name: &str, ip: IpAddr) -> DnsChecks {
        let mut out = DnsChecks::default();
        let mut log = DnsLog::new();
        let name = plain(name);
        let mut problems = Vec::new();
        match self.addresses(&name).await {
            Ok(addrs) => {
                let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                log.note(format!("A/AAAA {name}. -> {}", shown.join(", ")));
                if !addrs.contains(&ip) {
                    problems.push(format!("{name} resolves to {}", shown.join(", ")));
                }
            }
            Err(DnsError::NotFound) => {
                log.note(format!("A/AAAA {name}. -> no record (NXDOMAIN/NODATA)"));
                problems.push(format!("{name} has no A/AAAA record"));
            }
            Err(e) => out.inconclusive.push(format!(
                "A/AAAA {name}.: {e}; registration {name} not checked"
            )),
        }
        let rname = reverse_name(ip);
        // Resolvers answer `localhost` for loopback reverse names (RFC 6761): nothing to learn.
        let ptr = if ip.is_loopback() {
            Err(DnsError::NotFound)
        } else {
            self.ptr(ip).await
        };
        match ptr {
            Ok(names) => {
                log.note(format!("PTR {rname} -> {}.", names.join(". ")));
                if !names.is_empty() && !names.contains(&name) {
                    problems.push(format!("{ip}'s PTR is {}", names.join(", ")));
                }
            }
            Err(DnsError::NotFound) => {
                log.note(format!("PTR {rname} -> no record (NXDOMAIN/NODATA)"));
            }
            Err(e) => out.inconclusive.push(format!(
                "PTR {rname}: {e}; reverse of registration {name} not checked"
            )),
        }
        if !problems.is_empty() {
            out.findings.push(finding(
                self,
                FindingKind::RegistrationDnsMismatch,
                format!(
                    "registration {name} = {ip} disagrees with DNS: {}",
                    problems.join("; ")
                ),
                log.lines(),
            ));
        }
        out
    }
}
