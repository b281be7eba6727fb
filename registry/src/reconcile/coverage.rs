//! Which addresses and ports a sweep looked at.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use relayguard_core::SweepMeta;
use relayguard_core::scan::HostResult;

use crate::model::canonical_ip;

/// Which addresses and ports a sweep looked at: a finding there that the sweep did not see again
/// is gone, a finding elsewhere is simply not known about.
#[derive(Debug, Default)]
pub struct Coverage {
    nets: Vec<IpNet>,
    ranges: Vec<(IpAddr, IpAddr)>,
    seen: HashSet<IpAddr>,
    ports: Vec<u16>,
}

impl Coverage {
    /// Builds the coverage from the targets, the ports and the addresses that have results.
    /// Host-name targets cover exactly the addresses they resolved to, which the results carry.
    pub fn new(meta: &SweepMeta, results: &[HostResult]) -> Coverage {
        let mut c = Coverage::default();
        for t in &meta.targets {
            let t = t.trim();
            if let Ok(n) = t.parse::<IpNet>() {
                c.nets.push(n);
            } else if let Ok(a) = t.parse::<IpAddr>() {
                c.nets.push(IpNet::from(canonical_ip(a)));
            } else if let Some((a, b)) = t.split_once('-')
                && let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>())
            {
                c.ranges.push((a, b));
            }
        }
        c.seen = results.iter().map(|r| canonical_ip(r.address)).collect();
        c.ports = if meta.ports.is_empty() {
            let mut p: Vec<u16> = results.iter().map(|r| r.port).collect();
            p.sort_unstable();
            p.dedup();
            if p.is_empty() { vec![25] } else { p }
        } else {
            meta.ports.clone()
        };
        c
    }

    /// The ports the sweep probed.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether the sweep looked at `address` at all (any port).
    pub fn covers_address(&self, address: IpAddr) -> bool {
        let a = canonical_ip(address);
        self.seen.contains(&a)
            || self.nets.iter().any(|n| n.contains(&a))
            || self.ranges.iter().any(|(lo, hi)| lo <= &a && &a <= hi)
    }

    /// Whether the sweep looked at `port` on `address`.
    pub fn covers(&self, address: IpAddr, port: u16) -> bool {
        self.ports.contains(&port) && self.covers_address(address)
    }
}
