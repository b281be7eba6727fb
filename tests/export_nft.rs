//! The firewall pass-list as the campus firewall would use it: `relayguard hosts export --format
//! nft` loaded with the real `nft -f` into a chain that drops port 25 except the pass-list sets,
//! inside network namespaces this test creates, and checked by real TCP connects from outside.
//!
//! ```text
//!   <tag>-o (outside)  veth-o 198.19.3.1/24, route 198.18.27.0/24 via 198.19.3.2, nothing else
//!        |  veth pair
//!   <tag>-c (campus)   veth-c 198.19.3.2/24; one real Postfix per registration on 198.18.27.K
//!                      (on lo); nft: input and forward drop tcp/25 unless daddr @mail_direct_v4/6
//! ```
//!
//! Neither namespace has a default route or any other interface: nothing leaves them.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use relayguard_testkit::{Personality, Postfix};

/// Two namespaces joined by a veth pair; deleted (after their processes are killed) on drop.
struct Namespaces {
    outside: String,
    campus: String,
}

impl Namespaces {
    fn create() -> Namespaces {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "rgfw{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespaces {
            outside: format!("{tag}-o"),
            campus: format!("{tag}-c"),
        };
        let (o, c) = (ns.outside.as_str(), ns.campus.as_str());
        ip(&["netns", "add", o]);
        ip(&["netns", "add", c]);
        ip(&[
            "-n", o, "link", "add", "veth-o", "type", "veth", "peer", "name", "veth-c", "netns", c,
        ]);
        for (ns, dev, addr) in [
            (o, "veth-o", "198.19.3.1/24"),
            (c, "veth-c", "198.19.3.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n",
            o,
            "route",
            "add",
            "198.18.27.0/24",
            "via",
            "198.19.3.2",
        ]);
        ns
    }

    /// Whether a TCP connection from outside to `addr:25` gets the SMTP banner within 3 s, for
    /// every address at once (a dropped SYN costs the whole timeout, so they run in parallel).
    fn banners_from_outside(&self, addrs: &[Ipv4Addr]) -> BTreeSet<Ipv4Addr> {
        let children: Vec<_> = addrs
            .iter()
            .map(|a| {
                let child = Command::new("ip")
                    .args(["netns", "exec", &self.outside, "timeout", "3", "bash", "-c"])
                    .arg(format!("exec 3<>/dev/tcp/{a}/25 && head -c 4 <&3"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn ip netns exec");
                (*a, child)
            })
            .collect();
        children
            .into_iter()
            .filter_map(|(a, child)| {
                let out = child.wait_with_output().unwrap();
                (out.status.success() && out.stdout.starts_with(b"220 ")).then_some(a)
            })
            .collect()
    }

    fn nft_in_campus(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.campus, "nft"])
            .args(args)
            .output()
            .expect("run nft (Debian package nftables)");
        assert!(
            out.status.success(),
            "nft {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.outside, &self.campus] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("spawn ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn relayguard(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "relayguard {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn only_registered_mail_direct_hosts_pass_port_25_through_the_exported_nft_sets() {
    // (registration, expected to pass): every role, a suspended mail-direct, one past its
    // review date and an unregistered server, each a real Postfix answering on port 25.
    let hosts: [(Option<(&str, &str)>, bool); 8] = [
        (Some(("mail-direct", "active")), true),
        (Some(("mail-direct", "active")), true),
        (Some(("mail-direct", "suspended")), false),
        (Some(("mail-direct", "expired")), false),
        (Some(("mail-via-gateway", "active")), false),
        (Some(("internal-only", "active")), false),
        (Some(("non-mail", "active")), false),
        (None, false),
    ];
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    let addrs: Vec<Ipv4Addr> = (1..=hosts.len() as u8)
        .map(|k| Ipv4Addr::new(198, 18, 27, k))
        .collect();
    for ((reg, _), addr) in hosts.iter().zip(&addrs) {
        if let Some((role, status)) = reg {
            // "expired": active, but last reviewed long before its six months ran out.
            let (status, dates): (&str, &[&str]) = match *status {
                "expired" => (
                    "active",
                    &[
                        "--registered-on",
                        "2020-01-01",
                        "--reviewed-on",
                        "2020-01-01",
                    ],
                ),
                s => (s, &[]),
            };
            let address = addr.to_string();
            let hostname = format!("h{}.campus.test", addr.octets()[3]);
            let mut args = vec![
                "hosts",
                "add",
                &address,
                "--hostname",
                &hostname,
                "--role",
                role,
                "--status",
                status,
                "--admin-name",
                "Tanaka",
                "--admin-email",
                "tanaka@campus.test",
            ];
            args.extend_from_slice(dates);
            relayguard(&url, &args);
        }
    }
    // An IPv6 pass too, so the v6 set nft loads has an element.
    relayguard(
        &url,
        &[
            "hosts",
            "add",
            "2001:db8::25",
            "--hostname",
            "v6.campus.test",
            "--role",
            "mail-direct",
            "--admin-name",
            "Tanaka",
            "--admin-email",
            "tanaka@campus.test",
        ],
    );
    let set_file = dir.path().join("mail-direct.nft");
    relayguard(
        &url,
        &[
            "hosts",
            "export",
            "--format",
            "nft",
            "-o",
            set_file.to_str().unwrap(),
        ],
    );
    let plain = relayguard(&url, &["hosts", "export", "--format", "plain"]);

    let ns = Namespaces::create();
    let _servers: Vec<Postfix> = addrs
        .iter()
        .map(|a| Postfix::start_in_netns(Personality::ClosedStrict, &ns.campus, *a))
        .collect();

    // Without the firewall every server answers: what the rules block below is their doing.
    assert_eq!(
        ns.banners_from_outside(&addrs),
        addrs.iter().copied().collect::<BTreeSet<_>>(),
        "before the firewall, every server must be reachable"
    );

    let rules = dir.path().join("firewall.nft");
    let chain = |hook: &str| {
        format!(
            "  chain {hook} {{\n    type filter hook {hook} priority filter; policy accept;\n\
             \x20   tcp dport 25 ip daddr @mail_direct_v4 accept\n\
             \x20   tcp dport 25 ip6 daddr @mail_direct_v6 accept\n\
             \x20   tcp dport 25 counter drop\n  }}\n"
        )
    };
    std::fs::write(
        &rules,
        format!(
            "table inet filter {{\n  include \"{}\"\n{}{}}}\n",
            set_file.display(),
            chain("input"),
            chain("forward")
        ),
    )
    .unwrap();
    ns.nft_in_campus(&["-f", rules.to_str().unwrap()]);
    let loaded = ns.nft_in_campus(&["list", "set", "inet", "filter", "mail_direct_v6"]);
    assert!(loaded.contains("2001:db8::25"), "{loaded}");

    let expected: BTreeSet<Ipv4Addr> = hosts
        .iter()
        .zip(&addrs)
        .filter(|((_, pass), _)| *pass)
        .map(|(_, a)| *a)
        .collect();
    let passed = ns.banners_from_outside(&addrs);
    assert_eq!(
        passed, expected,
        "only the active mail-direct registrations may pass port 25"
    );

    // The plain list names the same hosts (plus the IPv6 one no server here answers for).
    let listed: BTreeSet<String> = plain.lines().map(str::to_string).collect();
    let mut want: BTreeSet<String> = expected.iter().map(ToString::to_string).collect();
    want.insert("2001:db8::25".into());
    assert_eq!(listed, want, "plain export:\n{plain}");

    // The drops were the firewall's: its counter saw the blocked SYNs (retries included).
    let ruleset = ns.nft_in_campus(&["list", "chain", "inet", "filter", "input"]);
    let dropped: u64 = ruleset
        .lines()
        .find(|l| l.contains("counter") && l.contains("drop"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "packets").nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop counter in:\n{ruleset}"));
    assert!(
        dropped >= (addrs.len() - expected.len()) as u64,
        "{ruleset}"
    );
}
