//! A real Debian postgrey (greylisting policy daemon) on a loopback port, for tests of servers
//! behind greylisting: a Postfix instance consults it with
//! [`Postfix::add_policy_service`](crate::Postfix::add_policy_service).
//!
//! Each daemon has its own database directory under `/tmp/relayguard-postgrey/PORT/` (owned by
//! the `postgrey` user it drops to) and a short `--delay`, and is stopped and removed on drop.
//! Needs root and the Debian `postgrey` package.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BASE_DIR: &str = "/tmp/relayguard-postgrey";

/// A running postgrey; killed and its database removed on drop.
#[derive(Debug)]
pub struct Postgrey {
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl Postgrey {
    /// Starts postgrey on a free `127.0.0.1` port, greylisting every new (client /24, sender,
    /// recipient) triplet for `delay`; returns once it accepts connections. Panics with the
    /// package to install when postgrey is missing.
    pub fn start(delay: Duration) -> Postgrey {
        assert!(
            Path::new("/usr/sbin/postgrey").exists(),
            "postgrey is not installed (apt-get install postgrey); the harness never skips silently"
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("find a free loopback port")
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let dir = Path::new(BASE_DIR).join(port.to_string());
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the postgrey database directory");
        let chown = Command::new("chown")
            .args(["postgrey:postgrey"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(chown.success(), "chown postgrey {}", dir.display());
        let child = Command::new("/usr/sbin/postgrey")
            .arg(format!("--inet={addr}"))
            .arg(format!("--delay={}", delay.as_secs().max(1)))
            .arg(format!("--dbdir={}", dir.display()))
            .arg(format!("--pidfile={}/postgrey.pid", dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgrey");
        let grey = Postgrey { addr, dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgrey never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        grey
    }

    /// Where it listens (for `check_policy_service inet:ADDR`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Postgrey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
