//! `--zone`: the MX consistency checks of campus zones, run after the sweep.

use relayguard_core::scan::PortState;
use relayguard_scanner::discover;
use relayguard_scanner::dns::Dns;
use relayguard_scanner::{SweepConfig, TargetSet};

use crate::output::ZoneReport;

/// The MX checks of one campus zone. MX addresses in the exclusion list are not probed.
pub async fn check_zone(
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
