//! A campus behind a DNAT, in network namespaces of its own: real Postfix instances on private
//! addresses, reached through public addresses that an nftables `dnat` rule forwards, as a
//! campus firewall, load balancer or port forward does.
//!
//! ```text
//!   <name>-s (scanner)  veth-s 198.19.0.1/24, route 198.18.0.0/16 via 198.19.0.2, nothing else
//!        |  veth pair
//!   <name>-n (campus)   veth-c 198.19.0.2/24; Postfix K listens on 10.25.0.K (on lo);
//!                       nft: iifname veth-c, 198.18.25.K tcp/25 -> dnat to 10.25.0.K
//! ```
//!
//! The scanner side has no other interface and no default route: nothing can leave the two
//! namespaces. Both are deleted on drop, after the instances are stopped. Needs root, `ip`,
//! `nft` and the Debian `postfix` package.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::postfix::{Personality, Postfix};

/// The scanner's address inside its namespace.
pub const SCANNER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

/// Postfix instances behind one DNAT, and the namespaces they live in.
pub struct DnatCampus {
    scan_ns: String,
    net_ns: String,
    /// (public address, instance), in the order asked for.
    hosts: Vec<(Ipv4Addr, Postfix)>,
}

impl DnatCampus {
    /// Builds the namespaces and starts one instance per personality: instance K (from 1)
    /// listens on `10.25.0.K` and is reached at the public address `198.18.25.K`.
    pub fn start(personalities: &[Personality]) -> DnatCampus {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "rgdnat{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut campus = DnatCampus {
            scan_ns: format!("{tag}-s"),
            net_ns: format!("{tag}-n"),
            hosts: Vec::new(),
        };
        let (s, n) = (campus.scan_ns.clone(), campus.net_ns.clone());
        ip(&["netns", "add", &s]);
        ip(&["netns", "add", &n]);
        ip(&[
            "-n", &s, "link", "add", "veth-s", "type", "veth", "peer", "name", "veth-c", "netns",
            &n,
        ]);
        for (ns, dev, addr) in [
            (&s, "veth-s", "198.19.0.1/24"),
            (&n, "veth-c", "198.19.0.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n",
            &s,
            "route",
            "add",
            "198.18.0.0/16",
            "via",
            "198.19.0.2",
        ]);
        let mut rules = String::from(
            "table ip campus {\n  chain prerouting {\n    type nat hook prerouting priority dstnat;\n",
        );
        for k in 1..=personalities.len() {
            rules += &format!(
                "    iifname \"veth-c\" ip daddr 198.18.25.{k} tcp dport 25 counter dnat to 10.25.0.{k}\n"
            );
        }
        rules += "  }\n}\n";
        let nft = Command::new("ip")
            .args(["netns", "exec", &n, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(rules.as_bytes())?;
                child.wait()
            })
            .expect("run nft (Debian package nftables)");
        assert!(nft.success(), "nft -f failed for:\n{rules}");
        for (i, p) in personalities.iter().enumerate() {
            let k = i as u8 + 1;
            let pf = Postfix::start_in_netns(*p, &n, Ipv4Addr::new(10, 25, 0, k));
            campus.hosts.push((Ipv4Addr::new(198, 18, 25, k), pf));
        }
        campus
    }

    /// The public address and the instance of host K (from 0, in the order started).
    pub fn host(&self, k: usize) -> (Ipv4Addr, &Postfix) {
        let (public, pf) = &self.hosts[k];
        (*public, pf)
    }

    /// A command that runs `program` in the scanner's namespace.
    pub fn scanner_command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.scan_ns, program]);
        cmd
    }

    /// The campus side's nftables ruleset with its counters, for assertions that the DNAT was
    /// really crossed.
    pub fn ruleset(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.net_ns, "nft", "list", "ruleset"])
            .output()
            .expect("nft list ruleset");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for DnatCampus {
    fn drop(&mut self) {
        // Stop the instances (inside their namespace) before it goes away.
        self.hosts.clear();
        for ns in [&self.scan_ns, &self.net_ns] {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            if let Ok(out) = pids {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
