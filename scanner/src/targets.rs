//! Sweep targets: CIDRs, ranges, single addresses, host names and `@file` lists, minus the
//! exclusions, as a lazy stream of addresses.
//!
//! Each target becomes a set of address intervals with the exclusions cut out before anything
//! else happens, so an excluded address can never be probed, and nothing is materialised: a /8
//! or an IPv6 /64 is just two numbers per interval.
//!
//! The IANA special-purpose ranges that can never hold a campus mail server ([`SPECIAL_RANGES`]:
//! "this network", multicast, reserved, documentation, link-local, …) are one more exclusion
//! layer: [`check_special`] refuses a target that lies wholly inside them and says what it cuts
//! from one that overlaps them, and [`special_exclusions`] gives them as exclusions. On Linux a
//! connect to 0.0.0.0 reaches the scanning host itself, and a multicast or broadcast address is
//! nobody's mail server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

/// Why a target or exclusion could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The text is not an address, CIDR, range or host name.
    #[error("{0:?} is not an address, CIDR (a.b.c.d/n), range (a.b.c.d-e.f.g.h) or host name")]
    Unparseable(String),
    /// A range whose ends are of different families or reversed.
    #[error("invalid range {0:?}: {1}")]
    BadRange(String, &'static str),
    /// A file of targets could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a target file is bad.
    #[error("{path}:{line}: {source}")]
    Line {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: Box<TargetError>,
    },
    /// A host name did not resolve.
    #[error("cannot resolve {0:?}: {1}")]
    Resolve(String, String),
    /// A target lies wholly inside a special-purpose range.
    #[error(
        "{target} lies inside {range} ({what}, {rfc}), a special-purpose range that holds no mail server; pass --allow-special to sweep it anyway"
    )]
    Special {
        /// The target as given.
        target: String,
        /// The special range it lies in.
        range: &'static str,
        /// What the range is for.
        what: &'static str,
        /// Where it is defined.
        rfc: &'static str,
    },
}

/// An IANA special-purpose address block (RFC 6890 registries) that no sweep touches unless
/// `--allow-special` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialRange {
    /// The block, as a CIDR.
    pub cidr: &'static str,
    /// What it is for.
    pub what: &'static str,
    /// Where it is defined.
    pub rfc: &'static str,
}

/// The special-purpose blocks refused by default: zmap's default blocklist and the IANA IPv6
/// special-purpose registry, less what a campus or this project's tests really use. Loopback
/// (127.0.0.0/8, ::1) and internal space (RFC 1918, 100.64.0.0/10, fc00::/7) stay allowed, and so
/// does 198.18.0.0/15 (benchmarking): the test labs of bench/ are built in it. IPv4-mapped and
/// NAT64 IPv6 addresses are refused because they are IPv4 hosts in disguise that would slip past
/// IPv4 exclusions; give the IPv4 address instead.
pub const SPECIAL_RANGES: &[SpecialRange] = &[
    SpecialRange {
        cidr: "0.0.0.0/8",
        what: "\"this network\"; 0.0.0.0 reaches the scanning host itself",
        rfc: "RFC 791, RFC 1122",
    },
    SpecialRange {
        cidr: "169.254.0.0/16",
        what: "IPv4 link-local",
        rfc: "RFC 3927",
    },
    SpecialRange {
        cidr: "192.0.0.0/24",
        what: "IETF protocol assignments",
        rfc: "RFC 6890",
    },
    SpecialRange {
        cidr: "192.0.2.0/24",
        what: "documentation, TEST-NET-1",
        rfc: "RFC 5737",
    },
    SpecialRange {
        cidr: "192.88.99.0/24",
        what: "6to4 relay anycast, deprecated",
        rfc: "RFC 7526",
    },
    SpecialRange {
        cidr: "198.51.100.0/24",
        what: "documentation, TEST-NET-2",
        rfc: "RFC 5737",
    },
    SpecialRange {
        cidr: "203.0.113.0/24",
        what: "documentation, TEST-NET-3",
        rfc: "RFC 5737",
    },
    SpecialRange {
        cidr: "224.0.0.0/4",
        what: "IPv4 multicast",
        rfc: "RFC 5771",
    },
    SpecialRange {
        cidr: "240.0.0.0/4",
        what: "reserved, with the limited broadcast address 255.255.255.255",
        rfc: "RFC 1112, RFC 919",
    },
    SpecialRange {
        cidr: "::/128",
        what: "the unspecified address",
        rfc: "RFC 4291",
    },
    SpecialRange {
        cidr: "::ffff:0:0/96",
        what: "IPv4-mapped addresses; give the IPv4 address",
        rfc: "RFC 4291",
    },
    SpecialRange {
        cidr: "64:ff9b::/96",
        what: "NAT64 well-known prefix; give the IPv4 address",
        rfc: "RFC 6052",
    },
    SpecialRange {
        cidr: "64:ff9b:1::/48",
        what: "local-use NAT64 prefix; give the IPv4 address",
        rfc: "RFC 8215",
    },
    SpecialRange {
        cidr: "100::/64",
        what: "discard-only",
        rfc: "RFC 6666",
    },
    SpecialRange {
        cidr: "2001:2::/48",
        what: "IPv6 benchmarking",
        rfc: "RFC 5180",
    },
    SpecialRange {
        cidr: "2001:20::/28",
        what: "ORCHIDv2 identifiers",
        rfc: "RFC 7343",
    },
    SpecialRange {
        cidr: "2001:db8::/32",
        what: "IPv6 documentation",
        rfc: "RFC 3849",
    },
    SpecialRange {
        cidr: "3fff::/20",
        what: "IPv6 documentation",
        rfc: "RFC 9637",
    },
    SpecialRange {
        cidr: "fe80::/10",
        what: "IPv6 link-local",
        rfc: "RFC 4291",
    },
    SpecialRange {
        cidr: "ff00::/8",
        what: "IPv6 multicast",
        rfc: "RFC 4291",
    },
];

impl SpecialRange {
    fn interval(&self) -> Interval {
        let net: IpNet = self.cidr.parse().expect("the table holds valid CIDRs");
        Interval::of(&TargetSpec::Net(net)).expect("a network is not a name")
    }
}

/// Addresses a special-purpose range takes out of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialCut {
    /// The target as given (CIDR, range or address).
    pub target: String,
    /// The special range.
    pub range: &'static SpecialRange,
    /// How many of the target's addresses fall in it.
    pub addresses: u128,
}

impl std::fmt::Display for SpecialCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} addresses in {} ({}, {}) are left out; --allow-special sweeps them",
            self.target, self.addresses, self.range.cidr, self.range.what, self.range.rfc
        )
    }
}

/// Checks address targets against [`SPECIAL_RANGES`]: a target wholly inside them is an error;
/// for one that overlaps them, says what is cut. Host names are not checked here: the
/// exclusions from [`special_exclusions`] drop whatever special address they resolve to.
pub fn check_special(specs: &[TargetSpec]) -> Result<Vec<SpecialCut>, TargetError> {
    let special: Vec<(&'static SpecialRange, Interval)> =
        SPECIAL_RANGES.iter().map(|r| (r, r.interval())).collect();
    let mut cuts = Vec::new();
    for spec in specs {
        let Some(target) = Interval::of(spec) else {
            continue;
        };
        let mut rest = vec![target];
        let mut here = Vec::new();
        for (range, cut) in &special {
            if let Some(overlap) = target.overlap(cut) {
                here.push(SpecialCut {
                    target: spec.to_string(),
                    range,
                    addresses: overlap.len(),
                });
                rest = rest.into_iter().flat_map(|p| p.minus(cut)).collect();
            }
        }
        if rest.is_empty() {
            let range = here
                .first()
                .expect("a target cut away entirely overlaps")
                .range;
            return Err(TargetError::Special {
                target: spec.to_string(),
                range: range.cidr,
                what: range.what,
                rfc: range.rfc,
            });
        }
        cuts.extend(here);
    }
    Ok(cuts)
}

/// [`SPECIAL_RANGES`] as exclusions, to cut them out of every target, resolved names included.
pub fn special_exclusions() -> Vec<TargetSpec> {
    SPECIAL_RANGES
        .iter()
        .map(|r| TargetSpec::Net(r.cidr.parse().expect("the table holds valid CIDRs")))
        .collect()
}

/// One parsed target specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A network block; every address in it, network and broadcast included (as nmap does:
    /// a /16 given as a target may well have hosts on x.y.z.0 and x.y.z.255).
    Net(IpNet),
    /// An inclusive range of addresses of one family.
    Range(IpAddr, IpAddr),
    /// A host name, resolved before the sweep.
    Name(String),
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetSpec::Net(net) => write!(f, "{net}"),
            TargetSpec::Range(a, b) if a == b => write!(f, "{a}"),
            TargetSpec::Range(a, b) => write!(f, "{a}-{b}"),
            TargetSpec::Name(name) => write!(f, "{name}"),
        }
    }
}

/// Parses one target: address, CIDR, `a-b` range, host name, or `@file` (one per line, `#`
/// comments and blank lines allowed).
pub fn parse_target(text: &str) -> Result<Vec<TargetSpec>, TargetError> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix('@') {
        return parse_file(Path::new(path), parse_one);
    }
    parse_one(text).map(|spec| vec![spec])
}

/// Parses one exclusion: address, CIDR or range, or `@file` of those. Host names are refused:
/// an exclusion must not depend on what a resolver says at sweep time.
pub fn parse_exclusion(text: &str) -> Result<Vec<TargetSpec>, TargetError> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix('@') {
        return parse_file(Path::new(path), parse_exclusion_one);
    }
    parse_exclusion_one(text).map(|spec| vec![spec])
}

/// Reads an exclusion file (`--exclude-file`).
pub fn parse_exclusion_file(path: &Path) -> Result<Vec<TargetSpec>, TargetError> {
    parse_file(path, parse_exclusion_one)
}

fn parse_exclusion_one(text: &str) -> Result<TargetSpec, TargetError> {
    match parse_one(text)? {
        TargetSpec::Name(_) => Err(TargetError::Unparseable(text.to_string())),
        spec => Ok(spec),
    }
}

fn parse_file(
    path: &Path,
    parse: fn(&str) -> Result<TargetSpec, TargetError>,
) -> Result<Vec<TargetSpec>, TargetError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TargetError::File {
        path: display.clone(),
        source,
    })?;
    let mut specs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        specs.push(parse(line).map_err(|e| TargetError::Line {
            path: display.clone(),
            line: i + 1,
            source: Box::new(e),
        })?);
    }
    Ok(specs)
}

fn parse_one(text: &str) -> Result<TargetSpec, TargetError> {
    let bad = || TargetError::Unparseable(text.to_string());
    if text.contains('/') {
        let net: IpNet = text.parse().map_err(|_| bad())?;
        return Ok(TargetSpec::Net(net));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(TargetSpec::Range(ip, ip));
    }
    if let Some((a, b)) = text.split_once('-')
        && let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>())
    {
        if a.is_ipv4() != b.is_ipv4() {
            return Err(TargetError::BadRange(
                text.into(),
                "ends are of different address families",
            ));
        }
        if to_u128(a) > to_u128(b) {
            return Err(TargetError::BadRange(text.into(), "start is after end"));
        }
        return Ok(TargetSpec::Range(a, b));
    }
    if is_host_name(text) {
        return Ok(TargetSpec::Name(text.trim_end_matches('.').to_string()));
    }
    Err(bad())
}

fn is_host_name(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    !s.is_empty()
        && s.len() <= 253
        && !s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
        })
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

/// An inclusive interval of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    start: u128,
    end: u128,
    v6: bool,
}

impl Interval {
    fn of(spec: &TargetSpec) -> Option<Interval> {
        match spec {
            TargetSpec::Net(net) => Some(Interval {
                start: to_u128(net.network()),
                end: to_u128(net.broadcast()),
                v6: net.network().is_ipv6(),
            }),
            TargetSpec::Range(a, b) => Some(Interval {
                start: to_u128(*a),
                end: to_u128(*b),
                v6: a.is_ipv6(),
            }),
            TargetSpec::Name(_) => None,
        }
    }

    /// Number of addresses (saturating: a whole IPv6 space is 2^128).
    fn len(&self) -> u128 {
        (self.end - self.start).saturating_add(1)
    }

    /// The addresses this interval shares with `other`, if any.
    fn overlap(&self, other: &Interval) -> Option<Interval> {
        (self.v6 == other.v6 && other.start <= self.end && self.start <= other.end).then(|| {
            Interval {
                start: self.start.max(other.start),
                end: self.end.min(other.end),
                v6: self.v6,
            }
        })
    }

    /// This interval minus `cut`: zero, one or two pieces.
    fn minus(self, cut: &Interval) -> Vec<Interval> {
        if cut.v6 != self.v6 || cut.end < self.start || cut.start > self.end {
            return vec![self];
        }
        let mut pieces = Vec::new();
        if cut.start > self.start {
            pieces.push(Interval {
                end: cut.start - 1,
                ..self
            });
        }
        if cut.end < self.end {
            pieces.push(Interval {
                start: cut.end + 1,
                ..self
            });
        }
        pieces
    }
}

/// A name given as a target with the addresses it resolved to.
#[derive(Debug, Clone)]
struct NamedTarget {
    name: Arc<str>,
    addresses: Vec<IpAddr>,
}

/// One address to probe, with the name it was given as (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address.
    pub ip: IpAddr,
    /// The host name the operator gave, when the target was a name.
    pub name: Option<Arc<str>>,
}

/// The whole target set of a sweep, exclusions applied.
#[derive(Debug, Clone, Default)]
pub struct TargetSet {
    intervals: Vec<Interval>,
    named: Vec<NamedTarget>,
    exclusions: Vec<Interval>,
}

impl TargetSet {
    /// Builds the set from specifications and exclusions; host names are resolved with `resolve`
    /// (so tests and the DNS module can supply their own resolver).
    pub async fn build<F, Fut>(
        specs: &[TargetSpec],
        exclusions: &[TargetSpec],
        resolve: F,
    ) -> Result<TargetSet, TargetError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<IpAddr>, String>>,
    {
        let exclusions: Vec<Interval> = exclusions.iter().filter_map(Interval::of).collect();
        let mut set = TargetSet {
            exclusions: exclusions.clone(),
            ..TargetSet::default()
        };
        for spec in specs {
            match spec {
                TargetSpec::Name(name) => {
                    let mut addresses = resolve(name.clone())
                        .await
                        .map_err(|e| TargetError::Resolve(name.clone(), e))?;
                    addresses.sort();
                    addresses.dedup();
                    addresses.retain(|ip| !set.is_excluded(*ip));
                    set.named.push(NamedTarget {
                        name: Arc::from(name.as_str()),
                        addresses,
                    });
                }
                other => {
                    let mut pieces = vec![Interval::of(other).expect("not a name")];
                    for cut in &exclusions {
                        pieces = pieces.into_iter().flat_map(|p| p.minus(cut)).collect();
                    }
                    set.intervals.extend(pieces);
                }
            }
        }
        Ok(set)
    }

    /// Adds addresses found for `name` elsewhere (e.g. in DNS), minus the exclusions.
    pub fn add_named(&mut self, name: &str, addresses: impl IntoIterator<Item = IpAddr>) {
        let mut addresses: Vec<IpAddr> = addresses
            .into_iter()
            .filter(|ip| !self.is_excluded(*ip))
            .collect();
        addresses.sort();
        addresses.dedup();
        if !addresses.is_empty() {
            self.named.push(NamedTarget {
                name: Arc::from(name),
                addresses,
            });
        }
    }

    /// Whether an address falls in an exclusion.
    pub fn is_excluded(&self, ip: IpAddr) -> bool {
        let n = to_u128(ip);
        self.exclusions
            .iter()
            .any(|e| e.v6 == ip.is_ipv6() && e.start <= n && n <= e.end)
    }

    /// How many addresses the sweep covers (saturating).
    pub fn len(&self) -> u128 {
        let ranges = self
            .intervals
            .iter()
            .fold(0u128, |acc, i| acc.saturating_add(i.len()));
        let named: u128 = self.named.iter().map(|n| n.addresses.len() as u128).sum();
        ranges.saturating_add(named)
    }

    /// Whether the set holds IPv4 addresses, and whether it holds IPv6 addresses.
    pub fn families(&self) -> (bool, bool) {
        let v6 = self.intervals.iter().map(|i| i.v6).chain(
            self.named
                .iter()
                .flat_map(|n| n.addresses.iter().map(IpAddr::is_ipv6)),
        );
        v6.fold((false, false), |(has4, has6), is6| {
            (has4 || !is6, has6 || is6)
        })
    }

    /// What the set covers, as addresses and inclusive `a-b` ranges with the exclusions already
    /// cut out: the registry resolves findings only on addresses a sweep really looked at.
    pub fn coverage(&self) -> Vec<String> {
        let ranges = self.intervals.iter().map(|i| {
            let (a, b) = (from_u128(i.start, i.v6), from_u128(i.end, i.v6));
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        });
        let named = self
            .named
            .iter()
            .flat_map(|n| n.addresses.iter().map(IpAddr::to_string));
        ranges.chain(named).collect()
    }

    /// The address ranges of the set, exclusions cut out, as inclusive `(first, last)` pairs in
    /// the order given (named targets are not included: see [`TargetSet::has_names`]).
    pub fn ranges(&self) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
        self.intervals
            .iter()
            .map(|i| (from_u128(i.start, i.v6), from_u128(i.end, i.v6)))
    }

    /// Whether the set holds targets given as host names (or found in DNS).
    pub fn has_names(&self) -> bool {
        !self.named.is_empty()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every address, lazily: named targets first, then the intervals in the order given.
    pub fn iter(&self) -> impl Iterator<Item = Target> + Send + '_ {
        let named = self.named.iter().flat_map(|n| {
            n.addresses.iter().map(move |ip| Target {
                ip: *ip,
                name: Some(n.name.clone()),
            })
        });
        let ranges = self.intervals.iter().flat_map(|i| {
            let v6 = i.v6;
            // `start..=end` on u128 is lazy; nothing is collected.
            (i.start..=i.end).map(move |n| Target {
                ip: from_u128(n, v6),
                name: None,
            })
        });
        named.chain(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn no_dns(name: String) -> Result<Vec<IpAddr>, String> {
        Err(format!("no resolver in this test for {name}"))
    }

    async fn set(targets: &[&str], excl: &[&str]) -> TargetSet {
        let specs: Vec<_> = targets
            .iter()
            .flat_map(|t| parse_target(t).unwrap())
            .collect();
        let ex: Vec<_> = excl
            .iter()
            .flat_map(|t| parse_exclusion(t).unwrap())
            .collect();
        TargetSet::build(&specs, &ex, no_dns).await.unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            parse_target("192.0.2.0/30").unwrap(),
            vec![TargetSpec::Net("192.0.2.0/30".parse().unwrap())]
        );
        assert!(matches!(parse_target("192.0.2.9").unwrap()[0], TargetSpec::Range(a, b) if a == b));
        assert!(matches!(
            parse_target("192.0.2.1-192.0.2.5").unwrap()[0],
            TargetSpec::Range(..)
        ));
        assert!(matches!(
            parse_target("2001:db8::1-2001:db8::ff").unwrap()[0],
            TargetSpec::Range(..)
        ));
        assert_eq!(
            parse_target("mx.example.edu").unwrap(),
            vec![TargetSpec::Name("mx.example.edu".into())]
        );
    }

    #[test]
    fn bad_targets_have_clear_errors() {
        for bad in [
            "192.0.2.0/33",
            "10.0.0.300",
            "192.0.2.9-192.0.2.1",
            "192.0.2.1-2001:db8::1",
            "not a host",
            "1.2.3",
            "",
        ] {
            let err = parse_target(bad).expect_err(bad).to_string();
            assert!(err.contains(bad.trim()) || bad.is_empty(), "{bad}: {err}");
        }
        assert!(
            parse_exclusion("mx.example.edu").is_err(),
            "names are not exclusions"
        );
    }

    #[test]
    fn target_files_allow_comments_and_report_bad_lines() {
        let dir = std::env::temp_dir().join(format!("rg-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "# campus\n192.0.2.0/31\n\n192.0.2.9 # lab\n").unwrap();
        let specs = parse_target(&format!("@{}", good.display())).unwrap();
        assert_eq!(specs.len(), 2);
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "192.0.2.1\n192.0.2.0/99\n").unwrap();
        let err = parse_target(&format!("@{}", bad.display()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.txt:2"), "{err}");
        assert!(
            parse_target("@/nonexistent/targets")
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/targets")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn exclusions_are_cut_before_iteration() {
        let s = set(&["192.0.2.0/29"], &["192.0.2.2", "192.0.2.4/31"]).await;
        let ips: Vec<String> = s.iter().map(|t| t.ip.to_string()).collect();
        assert_eq!(
            ips,
            [
                "192.0.2.0",
                "192.0.2.1",
                "192.0.2.3",
                "192.0.2.6",
                "192.0.2.7"
            ]
        );
        assert_eq!(s.len(), 5);
        assert!(s.is_excluded("192.0.2.5".parse().unwrap()));
    }

    #[tokio::test]
    async fn huge_blocks_are_lazy() {
        let s = set(&["10.0.0.0/8", "2001:db8::/64"], &["10.0.0.0/9"]).await;
        assert_eq!(s.len(), (1u128 << 23) + (1u128 << 64));
        let first: Vec<_> = s.iter().take(2).map(|t| t.ip.to_string()).collect();
        assert_eq!(first, ["10.128.0.0", "10.128.0.1"]);
        // Skipping to the v6 part would take long if anything were materialised; taking a few
        // addresses from a 2^64 block is instant.
        let s6 = set(&["2001:db8::/64"], &[]).await;
        assert_eq!(s6.iter().nth(5).unwrap().ip.to_string(), "2001:db8::5");
    }

    #[tokio::test]
    async fn added_names_respect_exclusions() {
        let mut s = set(&[], &["192.0.2.0/31"]).await;
        s.add_named(
            "mx.campus.test",
            ["192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap()],
        );
        s.add_named("gone.campus.test", ["192.0.2.0".parse().unwrap()]);
        let all: Vec<Target> = s.iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].ip.to_string(), "192.0.2.9");
        assert_eq!(all[0].name.as_deref(), Some("mx.campus.test"));
    }

    #[tokio::test]
    async fn coverage_leaves_out_the_exclusions() {
        let mut s = set(&["192.0.2.0/29", "2001:db8::1"], &["192.0.2.2"]).await;
        s.add_named("mx.campus.test", ["198.51.100.7".parse().unwrap()]);
        assert_eq!(
            s.coverage(),
            [
                "192.0.2.0-192.0.2.1",
                "192.0.2.3-192.0.2.7",
                "2001:db8::1",
                "198.51.100.7"
            ]
        );
    }

    #[tokio::test]
    async fn families_are_reported() {
        assert_eq!(set(&["192.0.2.0/30"], &[]).await.families(), (true, false));
        assert_eq!(
            set(&["192.0.2.1", "2001:db8::1"], &[]).await.families(),
            (true, true)
        );
        assert_eq!(
            set(&["192.0.2.1"], &["192.0.2.1"]).await.families(),
            (false, false)
        );
    }

    #[tokio::test]
    async fn names_resolve_and_keep_their_name() {
        let specs = parse_target("mx.campus.test").unwrap();
        let ex = parse_exclusion("127.0.0.2").unwrap();
        let s = TargetSet::build(&specs, &ex, |_| async {
            Ok(vec![
                "127.0.0.2".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
            ])
        })
        .await
        .unwrap();
        let all: Vec<Target> = s.iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].ip.to_string(), "127.0.0.1");
        assert_eq!(all[0].name.as_deref(), Some("mx.campus.test"));
        let err = TargetSet::build(&specs, &[], no_dns)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("mx.campus.test"), "{err}");
    }

    fn specs(targets: &[&str]) -> Vec<TargetSpec> {
        targets
            .iter()
            .flat_map(|t| parse_target(t).unwrap())
            .collect()
    }

    #[test]
    fn special_ranges_parse_and_do_not_overlap() {
        let intervals: Vec<Interval> = SPECIAL_RANGES.iter().map(SpecialRange::interval).collect();
        for (i, a) in intervals.iter().enumerate() {
            for b in &intervals[i + 1..] {
                assert_eq!(a.overlap(b), None, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn targets_wholly_inside_special_ranges_are_refused() {
        for (target, range) in [
            ("0.0.0.0/30", "0.0.0.0/8"),
            ("0.0.0.0", "0.0.0.0/8"),
            ("224.0.0.0/30", "224.0.0.0/4"),
            ("255.255.255.255", "240.0.0.0/4"),
            ("239.255.255.255-240.0.0.1", "224.0.0.0/4"),
            ("::", "::/128"),
            ("::ffff:10.0.0.1", "::ffff:0:0/96"),
            ("ff02::1", "ff00::/8"),
            ("fe80::1/64", "fe80::/10"),
            ("2001:db8::/64", "2001:db8::/32"),
        ] {
            let err = check_special(&specs(&[target])).expect_err(target);
            let text = err.to_string();
            assert!(
                text.contains(target) && text.contains(range) && text.contains("--allow-special"),
                "{target}: {text}"
            );
        }
    }

    #[test]
    fn loopback_private_and_lab_ranges_stay_allowed() {
        let allowed = specs(&[
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "198.18.0.0/15",
            "::1",
            "fd00::/8",
            "2001:db9::/32",
            "1.0.0.0/8",
        ]);
        assert_eq!(check_special(&allowed).unwrap(), Vec::new());
    }

    #[tokio::test]
    async fn a_partly_special_target_is_swept_minus_the_special_part() {
        let cuts = check_special(&specs(&["192.0.0.0/23", "223.255.255.254-224.0.0.1"])).unwrap();
        let described: Vec<(String, &str, u128)> = cuts
            .iter()
            .map(|c| (c.target.clone(), c.range.cidr, c.addresses))
            .collect();
        assert_eq!(
            described,
            [
                ("192.0.0.0/23".to_string(), "192.0.0.0/24", 256),
                ("223.255.255.254-224.0.0.1".to_string(), "224.0.0.0/4", 2),
            ]
        );
        assert!(cuts[0].to_string().contains("RFC 6890"), "{}", cuts[0]);
        let mut excl: Vec<TargetSpec> = specs(&["192.0.1.7"]);
        excl.extend(special_exclusions());
        let s = TargetSet::build(
            &specs(&["192.0.0.0/23", "223.255.255.254-224.0.0.1"]),
            &excl,
            no_dns,
        )
        .await
        .unwrap();
        assert_eq!(
            s.coverage(),
            [
                "192.0.1.0-192.0.1.6",
                "192.0.1.8-192.0.1.255",
                "223.255.255.254-223.255.255.255"
            ]
        );
        // Names resolving into special ranges lose those addresses too.
        let mut s = s;
        s.add_named(
            "odd.campus.test",
            ["0.0.0.0".parse().unwrap(), "127.0.0.25".parse().unwrap()],
        );
        assert!(s.is_excluded("255.255.255.255".parse().unwrap()));
        assert!(s.is_excluded("ff02::1".parse().unwrap()));
        assert!(!s.is_excluded("127.0.0.1".parse().unwrap()));
        let named: Vec<String> = s
            .iter()
            .filter(|t| t.name.is_some())
            .map(|t| t.ip.to_string())
            .collect();
        assert_eq!(named, ["127.0.0.25"]);
    }
}
