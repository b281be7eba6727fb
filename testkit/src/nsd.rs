//! Starts a real authoritative DNS server (nsd, Debian package `nsd`) on a loopback port for the
//! DNS tests, serving the zones in testkit/fixtures/dns/zones/, and stops it when dropped.
//!
//! CI must have nsd installed (`apt-get install -y nsd`); without it the tests fail loudly.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relayguard_scanner::dns::soa_serial_tcp;

/// A running nsd; killed (with its worker processes) on drop.
pub struct Nsd {
    child: Child,
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// The zone files and the nsd.conf template.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dns")
}

fn nsd_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nsd", "/usr/local/sbin/nsd"] {
        if Path::new(candidate).is_file() {
            return candidate.into();
        }
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v nsd"]).output()
        && out.status.success()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return p.into();
        }
    }
    panic!(
        "the DNS tests need the authoritative DNS server nsd, which is not installed: \
         run `apt-get install -y nsd` (Debian package nsd)"
    );
}

/// A port free on 127.0.0.1 for both UDP and TCP right now (not 53, not 5353).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().unwrap().port();
        if port == 53 || port == 5353 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn unique_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "relayguard-dns-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

impl Nsd {
    /// Starts nsd on a fresh port and waits until it serves campus.test.
    pub async fn start() -> Nsd {
        Nsd::start_with("campus.test", |dir, port| {
            for entry in std::fs::read_dir(fixtures().join("zones")).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
            }
            let conf = std::fs::read_to_string(fixtures().join("nsd.conf.in"))
                .unwrap()
                .replace("@DIR@", dir.to_str().unwrap())
                .replace("@PORT@", &port.to_string())
                .replace("@SILENT_PORT@", "9");
            std::fs::write(dir.join("nsd.conf"), conf).unwrap();
        })
        .await
    }

    /// Starts nsd on a fresh port serving `zones` (name, zone-file text), each transferable
    /// (AXFR) from 127.0.0.1, and waits until it answers for the first. Panics with nsd's log
    /// when it does not come up, e.g. because a zone file is invalid.
    pub async fn start_zones(zones: &[(&str, &str)]) -> Nsd {
        let first = zones.first().expect("at least one zone").0;
        Nsd::start_with(first, |dir, port| {
            let mut conf = format!(
                "server:\n    ip-address: 127.0.0.1@{port}\n    port: {port}\n    do-ip6: no\n\
                 \x20   username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n\
                 \x20   pidfile: \"{d}/nsd.pid\"\n    database: \"\"\n\
                 \x20   xfrdfile: \"{d}/xfrd.state\"\n    zonelistfile: \"{d}/zone.list\"\n\
                 \x20   xfrdir: \"{d}\"\n    logfile: \"{d}/nsd.log\"\n    verbosity: 1\n\
                 \x20   server-count: 1\n    reuseport: no\nremote-control:\n    control-enable: no\n",
                d = dir.display()
            );
            for (name, text) in zones {
                std::fs::write(dir.join(format!("{name}.zone")), text).unwrap();
                conf += &format!(
                    "zone:\n    name: \"{name}\"\n    zonefile: \"{name}.zone\"\n    \
                     provide-xfr: 127.0.0.1 NOKEY\n"
                );
            }
            std::fs::write(dir.join("nsd.conf"), conf).unwrap();
        })
        .await
    }

    /// Starts nsd with the `nsd.conf` (and zones) that `prepare` writes into a fresh directory
    /// for a fresh port, and waits until it answers for `zone`; five tries, since a port picked
    /// free may be taken before nsd binds it.
    async fn start_with(zone: &str, prepare: impl Fn(&std::path::Path, u16)) -> Nsd {
        let binary = nsd_binary();
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = unique_dir();
            let port = free_port();
            prepare(&dir, port);
            let child = Command::new(&binary)
                .arg("-d")
                .arg("-c")
                .arg(dir.join("nsd.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join("stderr")).unwrap(),
                ))
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut nsd = Nsd {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = nsd.child.try_wait() {
                    break;
                }
                if soa_serial_tcp(nsd.addr, zone, Duration::from_millis(300))
                    .await
                    .is_ok()
                {
                    return nsd;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            last_log = nsd.logs();
            drop(nsd);
        }
        panic!("nsd did not start serving {zone}:\n{last_log}");
    }

    /// nsd's log and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("nsd.log")).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
        format!("{log}{err}")
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        // nsd forks a transfer daemon and server workers into its process group (ours alone,
        // from process_group(0)): ask them all to stop, then make sure.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pid}")])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
