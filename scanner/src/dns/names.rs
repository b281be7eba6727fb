//! Query-name construction: reversed octets for IPv4, reversed nibbles for IPv6.

use std::net::IpAddr;

/// The labels of an address in reverse order, as used under `in-addr.arpa`, `ip6.arpa` and
/// DNSBL zones: `127.0.0.2` → `2.0.0.127`; `::1` → `1.0.0. … .0` (32 nibbles).
fn reversed_labels(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(63);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                }
            }
            out
        }
    }
}

/// The fully qualified reverse-DNS name of an address, with the trailing dot:
/// `127.0.0.1` → `1.0.0.127.in-addr.arpa.`, `::1` → `1.0.…0.ip6.arpa.`.
pub fn reverse_name(ip: IpAddr) -> String {
    let suffix = match ip {
        IpAddr::V4(_) => "in-addr.arpa.",
        IpAddr::V6(_) => "ip6.arpa.",
    };
    format!("{}.{suffix}", reversed_labels(ip))
}

/// The DNSBL query name of an address under `zone` (RFC 5782), fully qualified so that no
/// search domain is appended: (`127.0.0.2`, `dnsbl.test`) → `2.0.0.127.dnsbl.test.`.
pub fn dnsbl_query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim().trim_end_matches('.');
    format!("{}.{zone}.", reversed_labels(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_reverse_name_reverses_octets() {
        assert_eq!(
            reverse_name("192.0.2.10".parse().unwrap()),
            "10.2.0.192.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("127.0.0.1".parse().unwrap()),
            "1.0.0.127.in-addr.arpa."
        );
    }

    #[test]
    fn ipv6_reverse_name_uses_32_reversed_nibbles() {
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        let loopback = reverse_name("::1".parse().unwrap());
        assert_eq!(loopback.split('.').filter(|l| *l == "0").count(), 31);
        assert!(loopback.starts_with("1.0.0.0."));
        assert!(loopback.ends_with(".0.ip6.arpa."));
    }

    #[test]
    fn dnsbl_names_are_fully_qualified_whatever_the_zone_spelling() {
        let ip = "127.0.0.2".parse().unwrap();
        assert_eq!(dnsbl_query_name(ip, "dnsbl.test"), "2.0.0.127.dnsbl.test.");
        assert_eq!(dnsbl_query_name(ip, "dnsbl.test."), "2.0.0.127.dnsbl.test.");
        assert_eq!(
            dnsbl_query_name("fd00::25".parse().unwrap(), "bl.test"),
            "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.bl.test."
        );
    }
}
