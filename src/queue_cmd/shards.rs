//! Splitting a sweep's target space into shards: contiguous address intervals.
//!
//! Contiguous intervals rather than a seeded permutation: the target set is already a list of
//! intervals with the exclusions cut out, the registry records coverage as intervals, a shard's
//! checkpoint is then one number (how many of its addresses are done), and a quarantined shard
//! leaves one interval out of the coverage. The price is that a shard hits one subnet at a time;
//! the sweep's own pacing (`--rate`) bounds what one subnet sees.
//!
//! Planning is lazy: shards come from an iterator over the merged ranges, so a /8 is planned in
//! memory proportional to the number of ranges given, not to the addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One shard: an inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// First address.
    pub first: IpAddr,
    /// Last address (inclusive).
    pub last: IpAddr,
}

impl Shard {
    /// Number of addresses in the shard.
    pub fn len(&self) -> u128 {
        to_u128(self.last) - to_u128(self.first) + 1
    }

    /// The sub-range of `count` addresses starting `offset` addresses into the shard, cut at its
    /// end (`None` when `offset` is past the end).
    pub fn slice(&self, offset: u128, count: u128) -> Option<Shard> {
        let v6 = self.first.is_ipv6();
        let start = to_u128(self.first).checked_add(offset)?;
        let last = to_u128(self.last);
        if start > last || count == 0 {
            return None;
        }
        let end = start.saturating_add(count - 1).min(last);
        Some(Shard {
            first: from_u128(start, v6),
            last: from_u128(end, v6),
        })
    }
}

/// Sorts the ranges, merges overlapping and adjacent ones (per family), so no address is planned
/// twice even when targets overlap.
pub fn merge(ranges: impl IntoIterator<Item = (IpAddr, IpAddr)>) -> Vec<(IpAddr, IpAddr)> {
    let mut list: Vec<(bool, u128, u128)> = ranges
        .into_iter()
        .map(|(a, b)| (a.is_ipv6(), to_u128(a), to_u128(b)))
        .collect();
    list.sort_unstable();
    let mut merged: Vec<(bool, u128, u128)> = Vec::with_capacity(list.len());
    for (v6, start, end) in list {
        match merged.last_mut() {
            Some((lv6, _, lend)) if *lv6 == v6 && start <= lend.saturating_add(1) => {
                *lend = (*lend).max(end);
            }
            _ => merged.push((v6, start, end)),
        }
    }
    merged
        .into_iter()
        .map(|(v6, a, b)| (from_u128(a, v6), from_u128(b, v6)))
        .collect()
}

/// The shards of merged ranges: each range cut into pieces of at most `size` addresses, lazily.
pub fn shards(ranges: &[(IpAddr, IpAddr)], size: u128) -> impl Iterator<Item = Shard> + '_ {
    let size = size.max(1);
    ranges.iter().flat_map(move |&(first, last)| {
        let v6 = first.is_ipv6();
        let (start, end) = (to_u128(first), to_u128(last));
        let mut next = Some(start);
        std::iter::from_fn(move || {
            let s = next?;
            let e = s.saturating_add(size - 1).min(end);
            next = if e == end { None } else { Some(e + 1) };
            Some(Shard {
                first: from_u128(s, v6),
                last: from_u128(e, v6),
            })
        })
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
        // Only IPv4 values reach here with v6 false.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use relayguard_scanner::targets::{TargetSet, TargetSpec};
    use std::collections::BTreeSet;

    /// Builds the scanner's own target set (so exclusions are cut exactly as `sweep` cuts them)
    /// and plans its shards.
    fn plan(block: (u32, u8), cuts: &[(u32, u32)], size: u128) -> (TargetSet, Vec<Shard>) {
        let net: ipnet::IpNet = ipnet::Ipv4Net::new(Ipv4Addr::from(block.0), block.1)
            .unwrap()
            .trunc()
            .into();
        let exclusions: Vec<TargetSpec> = cuts
            .iter()
            .map(|&(a, b)| TargetSpec::Range(Ipv4Addr::from(a).into(), Ipv4Addr::from(b).into()))
            .collect();
        let set = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(TargetSet::build(
                &[TargetSpec::Net(net)],
                &exclusions,
                |_| async { Err::<Vec<IpAddr>, _>("no names".to_string()) },
            ))
            .unwrap();
        let merged = merge(set.ranges());
        let list = shards(&merged, size).collect();
        (set, list)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Shards of a block with exclusions add up to exactly the block minus the exclusions,
        /// with no address twice and no shard larger than asked.
        #[test]
        fn shards_partition_the_block_minus_exclusions(
            base in any::<u32>(),
            prefix in 18u8..=26,
            cuts in proptest::collection::vec((0u32..20_000, 0u32..600), 0..6),
            size in 1u128..3000,
        ) {
            let network = base & (u32::MAX << (32 - prefix));
            let cuts: Vec<(u32, u32)> = cuts
                .into_iter()
                .map(|(off, len)| {
                    let a = network.saturating_add(off);
                    (a, a.saturating_add(len))
                })
                .collect();
            let (set, list) = plan((network, prefix), &cuts, size);
            let mut seen = BTreeSet::new();
            for s in &list {
                prop_assert!(s.len() <= size);
                let (a, b) = (to_u128(s.first), to_u128(s.last));
                for n in a..=b {
                    prop_assert!(seen.insert(n), "address {n} in two shards");
                }
            }
            let expected: BTreeSet<u128> = set.iter().map(|t| to_u128(t.ip)).collect();
            prop_assert_eq!(seen, expected);
        }
    }

    #[test]
    fn overlapping_targets_are_planned_once() {
        let a: IpAddr = "10.0.0.0".parse().unwrap();
        let b: IpAddr = "10.0.0.255".parse().unwrap();
        let c: IpAddr = "10.0.0.128".parse().unwrap();
        let d: IpAddr = "10.0.1.10".parse().unwrap();
        let merged = merge([(a, b), (c, d)]);
        assert_eq!(merged, vec![(a, d)]);
        let total: u128 = shards(&merged, 100).map(|s| s.len()).sum();
        assert_eq!(total, 256 + 11);
    }

    #[test]
    fn a_slash_8_is_planned_lazily_and_fast() {
        let a: IpAddr = "10.0.0.0".parse().unwrap();
        let b: IpAddr = "10.255.255.255".parse().unwrap();
        let started = std::time::Instant::now();
        let merged = merge([(a, b)]);
        let (count, total) =
            shards(&merged, 4096).fold((0u64, 0u128), |(c, t), s| (c + 1, t + s.len()));
        assert_eq!((count, total), (4096, 1 << 24));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_slice_stops_at_the_shard_end() {
        let s = Shard {
            first: "10.0.0.0".parse().unwrap(),
            last: "10.0.0.9".parse().unwrap(),
        };
        assert_eq!(s.slice(8, 4).unwrap().len(), 2);
        assert!(s.slice(10, 4).is_none());
        assert_eq!(
            s.slice(0, 4).unwrap().last,
            "10.0.0.3".parse::<IpAddr>().unwrap()
        );
    }
}
