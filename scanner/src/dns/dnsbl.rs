//! DNS blocklist lookups (RFC 5782): is a campus MTA listed?

use std::net::IpAddr;

use relayguard_core::FindingKind;

use super::names::dnsbl_query_name;
use super::resolver::{Dns, DnsError};
use super::{DnsChecks, DnsLog, finding};

/// The blocklists Miyazaki University's mail gateway consulted in 2007, as an
/// example for `--dnsbl` only: relayguard queries no blocklist unless told to. Check each
/// list's usage policy first (several refuse queries from large public resolvers or need a
/// subscription at university volumes), and note that DSBL, also in that report, is gone.
pub const MIYAZAKI_2007_EXAMPLE_ZONES: [&str; 4] = [
    "sbl-xbl.spamhaus.org",
    "bl.spamcop.net",
    "dnsbl.sorbs.net",
    "all.rbl.jp",
];

/// One blocklist's answer for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsblAnswer {
    /// The zone, without trailing dot.
    pub zone: String,
    /// The return codes (127.0.0.x), empty when not listed.
    pub codes: Vec<IpAddr>,
    /// The TXT reasons, if the list publishes any.
    pub reasons: Vec<String>,
}

/// Whether a DNSBL answer is a listing code (127.0.0.0/8 but not 127.255.255.0/24, which
/// Spamhaus and others use to say the query itself was refused or malformed).
fn is_listing_code(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 127 && !(o[1] == 255 && o[2] == 255)
        }
        IpAddr::V6(_) => false,
    }
}

impl Dns {
    /// Looks `ip` up in each blocklist zone (`d.c.b.a.zone.`, nibbles for IPv6): one
    /// `dnsbl-listed` finding per zone that answers with a 127.0.0.x code, with the code and
    /// the TXT reason. NXDOMAIN means not listed; a failed lookup or an answer outside
    /// 127.0.0.0/8 (a refused or hijacked query) is reported as inconclusive, not as a listing.
    pub async fn dnsbl_checks(&self, ip: IpAddr, zones: &[String]) -> DnsChecks {
        let mut out = DnsChecks::default();
        for zone in zones {
            let zone = zone.trim().trim_end_matches('.');
            if zone.is_empty() {
                continue;
            }
            let qname = dnsbl_query_name(ip, zone);
            let mut log = DnsLog::new();
            let codes = match self.ipv4(&qname).await {
                Ok(codes) => codes,
                Err(DnsError::NotFound) => {
                    tracing::debug!(target: "relayguard::dns", "A {qname} -> NXDOMAIN (not listed)");
                    continue;
                }
                Err(e) => {
                    out.inconclusive.push(format!(
                        "DNSBL {zone}: A {qname}: {e}; listing of {ip} unknown"
                    ));
                    continue;
                }
            };
            let shown: Vec<String> = codes.iter().map(ToString::to_string).collect();
            log.note(format!("A {qname} -> {}", shown.join(", ")));
            let (listing, odd): (Vec<IpAddr>, Vec<IpAddr>) =
                codes.into_iter().partition(is_listing_code);
            if listing.is_empty() {
                let odd: Vec<String> = odd.iter().map(ToString::to_string).collect();
                out.inconclusive.push(format!(
                    "DNSBL {zone}: A {qname} answered {} (not a listing code: query refused by \
                     the list or answer rewritten by the resolver)",
                    odd.join(", ")
                ));
                continue;
            }
            let reasons = match self.txt(&qname).await {
                Ok(txt) => {
                    for t in &txt {
                        log.note(format!("TXT {qname} -> \"{t}\""));
                    }
                    txt
                }
                Err(e) => {
                    log.note(format!("TXT {qname} -> {e}"));
                    vec![]
                }
            };
            let answer = DnsblAnswer {
                zone: zone.to_string(),
                codes: listing,
                reasons,
            };
            let codes: Vec<String> = answer.codes.iter().map(ToString::to_string).collect();
            let reason = if answer.reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", answer.reasons.join(" / "))
            };
            out.findings.push(finding(
                self,
                FindingKind::DnsblListed,
                format!(
                    "{ip} is listed on {} (return code {}){reason}",
                    answer.zone,
                    codes.join(", ")
                ),
                log.lines(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_127_codes_outside_the_error_range_are_listings() {
        assert!(is_listing_code(&"127.0.0.2".parse().unwrap()));
        assert!(is_listing_code(&"127.0.0.11".parse().unwrap()));
        assert!(!is_listing_code(&"127.255.255.254".parse().unwrap()));
        assert!(!is_listing_code(&"192.0.2.1".parse().unwrap()));
        assert!(!is_listing_code(&"::1".parse().unwrap()));
    }
}
