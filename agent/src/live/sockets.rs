//! Listening TCP sockets from `/proc/net/tcp{,6}`, joined to processes through
//! `/proc/PID/fd/* -> socket:[INODE]`.
//!
//! Addresses are printed by the kernel as the raw network-order words in host byte order
//! (127.0.0.1 is `0100007F` on little-endian), ports as 4 hex digits: we parse both as numbers,
//! never as text (`"19"` never matches `"0019"`). Only the agent's own network namespace is
//! seen; MTAs in containers with their own namespace are not.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use relayguard_core::agent_report::{FactKind, Mechanism, Mta};

use super::proc::Proc;
use crate::detect::Detection;
use crate::mta::SMTP_PORTS;

/// TCP state code of LISTEN.
const TCP_LISTEN: &str = "0A";

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Bound address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Socket inode.
    pub inode: u64,
}

/// Parses a `/proc/net/tcp` local address `AAAAAAAA:PPPP` (or 32 hex digits for tcp6).
pub fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let addr = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(a, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((addr, port))
}

/// Parses listening SMTP sockets from the text of `/proc/net/tcp` or `tcp6`.
/// Malformed lines are counted, not fatal.
pub fn parse_table(text: &str) -> (Vec<Listener>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            bad += 1;
            continue;
        }
        if f[3] != TCP_LISTEN {
            continue;
        }
        let (Some((addr, port)), Ok(inode)) = (parse_addr(f[1]), f[9].parse::<u64>()) else {
            bad += 1;
            continue;
        };
        if SMTP_PORTS.contains(&port) {
            out.push(Listener { addr, port, inode });
        }
    }
    (out, bad)
}

/// Whether an address is loopback (including IPv4-mapped loopback).
pub fn is_loopback(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_loopback(),
        IpAddr::V6(v) => v.is_loopback() || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
    }
}

/// Finds the pids holding socket `inode` open.
fn owners(proc_dir: &Path, procs: &[Proc], inode: u64) -> Vec<u32> {
    let want = format!("socket:[{inode}]");
    procs
        .iter()
        .filter(|p| {
            fs::read_dir(proc_dir.join(p.pid.to_string()).join("fd"))
                .map(|rd| {
                    rd.flatten()
                        .any(|e| fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == want))
                })
                .unwrap_or(false)
        })
        .map(|p| p.pid)
        .collect()
}

/// Adds Listening findings for SMTP listeners, attributed to their process.
pub fn report(proc_dir: &Path, procs: &[Proc], d: &mut Detection) {
    for table in ["net/tcp", "net/tcp6"] {
        let path = proc_dir.join(table);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let (listeners, bad) = parse_table(&text);
        if bad > 0 {
            d.warn(format!("{}: {bad} unparseable line(s)", path.display()));
        }
        for l in listeners {
            let pids = owners(proc_dir, procs, l.inode);
            let holder = pids
                .iter()
                .filter_map(|pid| procs.iter().find(|p| p.pid == *pid))
                .next();
            let mta = holder
                .and_then(|p| p.mta)
                // Socket activation / inetd: the holder is PID 1 or (x)inetd, not the MTA.
                .unwrap_or(Mta::Unknown);
            let exposure = if is_loopback(&l.addr) {
                "loopback only"
            } else {
                "exposed"
            };
            let who = match holder {
                Some(p) => format!("pid {} exe {} cmdline {:?}", p.pid, p.exe, p.cmdline),
                None => "no process found (other namespace or insufficient privileges)".into(),
            };
            let addr = match l.addr {
                IpAddr::V6(a) => format!("[{a}]:{}", l.port),
                IpAddr::V4(a) => format!("{a}:{}", l.port),
            };
            d.fact(
                mta,
                FactKind::Listening,
                Some(Mechanism::Socket),
                format!("{} inode {}", path.display(), l.inode),
                format!("{addr} ({exposure}) held by {who}"),
            );
        }
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_format() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 100 0 0 10 0\n\
   1: 00000000:024B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0\n\
   3: garbage\n";
        let (l, bad) = parse_table(t);
        assert_eq!(bad, 1);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(l[0].port, 25);
        assert!(is_loopback(&l[0].addr));
        assert_eq!(l[1].port, 587);
        assert!(!is_loopback(&l[1].addr));
        let (a, p) = parse_addr("00000000000000000000000001000000:01D1").unwrap();
        assert_eq!((a, p), ("::1".parse().unwrap(), 465));
        let (a, _) = parse_addr("0000000000000000FFFF00000100007F:0019").unwrap();
        assert!(is_loopback(&a));
    }
}
