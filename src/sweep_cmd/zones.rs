//! `--zone`: the MX consistency checks of campus zones, run after the sweep.

use std::collections::HashSet;
use std::net::IpAddr;

use relayguard_core::scan::PortState;
use relayguard_registry::model::{Host, HostStatus};
use relayguard_scanner::discover;
use relayguard_scanner::dns::Dns;
use relayguard_scanner::{SweepConfig, TargetSet};

use crate::output::ZoneReport;

/// The DNS checks of one campus zone: its MX targets (answering, over IPv6 too, registered as
/// mail servers) and the registrations under it (name and address agree). MX addresses in the
/// exclusion list are not probed. Without `registrations` (no local registry) the registration
/// checks are skipped, with a note.
pub async fn check_zone(
    zone: &str,
    dns: &Dns,
    targets: &TargetSet,
    config: &SweepConfig,
    registrations: Option<&[Host]>,
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
    let active = |h: &&Host| h.status == HostStatus::Active;
    let mail_servers: HashSet<IpAddr> = registrations
        .unwrap_or_default()
        .iter()
        .filter(active)
        .filter(|h| h.role.is_mail())
        .filter_map(|h| h.address.parse().ok())
        .collect();
    let registered = |ip: IpAddr| registrations.is_none() || mail_servers.contains(&ip);
    let checks = dns.mx_checks(zone, 25, &registered, probe).await;
    let mut findings = checks.findings;
    let mut notes = checks.inconclusive;
    for ip in excluded.into_inner().unwrap_or_default() {
        notes.push(format!("MX address {ip} is excluded and was not probed"));
    }
    match registrations {
        None => notes
            .push("registrations not checked (no local registry: --registry or --no-store)".into()),
        Some(hosts) => {
            let suffix = format!(".{}", zone.trim_end_matches('.'));
            for h in hosts.iter().filter(active) {
                let in_zone = h.hostname.trim_end_matches('.').ends_with(&suffix)
                    || h.hostname.trim_end_matches('.') == zone.trim_end_matches('.');
                if let (true, Ok(ip)) = (in_zone, h.address.parse::<IpAddr>()) {
                    let check = dns.registration_dns_check(&h.hostname, ip).await;
                    findings.extend(check.findings);
                    notes.extend(check.inconclusive);
                }
            }
        }
    }
    ZoneReport {
        zone: zone.to_string(),
        findings,
        notes,
    }
}
