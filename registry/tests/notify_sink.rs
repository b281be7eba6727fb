//! A real Debian Postfix on a loopback alias that delivers every message for the test domains
//! into one Maildir, for `relayguard notify`'s tests (copied from the workspace's
//! tests/support/postfix.rs and changed to deliver instead of discard).
//!
//! Each instance gets its own `127.77.X.Y` alias on `lo` (the same lock directory as the
//! scanner's harness, so the two never pick the same address), its own config, queue and
//! Maildir under `/tmp/relayguard-postfix/127.77.X.Y/`. The only delivery agent in master.cf is
//! `virtual` (into the Maildir); every other transport is `discard:` and there is no SMTP/LMTP
//! client at all, so nothing can leave the machine. Needs root and the Debian `postfix` package.

// Also built as its own (empty) test target by Cargo's auto-discovery; `notify.rs` includes it
// with `#[path]`, and not every helper is used from there.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Parent domain of every instance's `myhostname` (`sinkN.campus.test`).
pub const DOMAIN: &str = "campus.test";

/// Holds instance directories and the per-address lock files. Must be world-traversable
/// because the Postfix daemons run as the unprivileged `postfix` user.
const BASE_DIR: &str = "/tmp/relayguard-postfix";

/// Number of `127.77.X.Y` addresses we hand out: X in 0..200, Y in 1..=250.
const SLOTS: u32 = 200 * 250;

/// A running Postfix that delivers mail for its domains into one Maildir; stopped and cleaned
/// up on drop.
#[derive(Debug)]
pub struct MaildirSink {
    addr: Ipv4Addr,
    hostname: String,
    root: PathBuf,
    /// flock on `BASE_DIR/<addr>.lock`, held for the instance's lifetime.
    _lock: File,
}

impl MaildirSink {
    /// Starts an instance accepting mail for `domains` (any local part); blocks until it
    /// answers 220 on `addr():25`. Panics with a clear message if Postfix is missing, we are not
    /// root, or the instance does not come up.
    pub fn start(domains: &[&str]) -> MaildirSink {
        check_prerequisites();
        let (addr, lock) = allocate_address();
        let [_, _, x, y] = addr.octets();
        let hostname = format!("sink{}.{DOMAIN}", u32::from(x) * 256 + u32::from(y));
        let root = Path::new(BASE_DIR).join(addr.to_string());
        let sink = MaildirSink {
            addr,
            hostname,
            root,
            _lock: lock,
        };
        sink.write_config(domains);
        run(Command::new("ip").args(["addr", "add", &format!("{addr}/32"), "dev", "lo"]));
        run(Command::new("postfix")
            .arg("-c")
            .arg(sink.root.join("etc"))
            .arg("start"));
        sink.wait_for_banner();
        sink
    }

    /// The instance's loopback address; it listens on port 25.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// `smtp://ADDR:25`, for `notify --smtp`.
    pub fn smtp_url(&self) -> String {
        format!("smtp://{}:25", self.addr)
    }

    /// Contents of the instance's `maillog_file`.
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("maillog")).unwrap_or_default()
    }

    /// Every delivered message (raw bytes), in delivery order (Maildir names start with the
    /// delivery time).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let dir = self.root.join("mail/inbox/new");
        let mut entries: Vec<(std::time::SystemTime, String, PathBuf)> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (
                    modified,
                    e.file_name().to_string_lossy().into_owned(),
                    e.path(),
                )
            })
            .collect();
        entries.sort();
        entries
            .into_iter()
            .map(|(_, _, p)| fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
            .collect()
    }

    /// Waits until at least `n` messages were delivered (at most 30 s) and returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let msgs = self.messages();
            if msgs.len() >= n {
                return msgs;
            }
            if Instant::now() > deadline {
                panic!(
                    "only {} of {n} messages delivered; log:\n{}",
                    msgs.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn write_config(&self, domains: &[&str]) {
        let (root, etc) = (&self.root, self.root.join("etc"));
        fs::create_dir_all(&etc).expect("create instance config directory");
        chmod(root, 0o755);
        fs::create_dir_all(root.join("spool")).expect("create queue directory");
        // The Maildir base belongs to the postfix user, as which virtual(8) delivers.
        let (uid, gid) = postfix_ids();
        let mail = root.join("mail");
        fs::create_dir_all(&mail).expect("create Maildir base");
        std::os::unix::fs::chown(&mail, Some(uid), Some(gid)).expect("chown Maildir base");
        let r = root.display();
        let main = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {r}/spool\ndata_directory = {r}/data\n\
             meta_directory = /etc/postfix\n\
             maillog_file = {r}/maillog\nmaillog_file_prefixes = {r}\n\
             inet_interfaces = {addr}\ninet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\nmyhostname = {host}\nmydomain = {DOMAIN}\n\
             mydestination =\nmyorigin = $myhostname\n\
             virtual_mailbox_domains = {domains}\n\
             virtual_mailbox_base = {r}/mail\n\
             virtual_mailbox_maps = static:inbox/\n\
             virtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{gid}\n\
             virtual_minimum_uid = 1\nvirtual_transport = virtual\n\
             default_transport = discard:\nrelay_transport = discard:\nlocal_transport = discard:\n\
             smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             smtp_dns_support_level = disabled\nsmtpd_peername_lookup = no\nbiff = no\n\
             alias_maps =\nalias_database =\n",
            addr = self.addr,
            host = self.hostname,
            domains = domains.join(", "),
        );
        write_file(&etc.join("main.cf"), &main);
        write_file(&etc.join("master.cf"), MASTER_CF);
    }

    fn wait_for_banner(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = SocketAddr::from((self.addr, 25));
        loop {
            let banner =
                TcpStream::connect_timeout(&target, Duration::from_secs(1)).and_then(|s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    let mut line = String::new();
                    BufReader::new(&s).read_line(&mut line)?;
                    (&s).write_all(b"QUIT\r\n")?;
                    Ok(line)
                });
            match banner {
                Ok(line) if line.starts_with("220 ") => return,
                _ if self.log().contains("fatal:") || Instant::now() > deadline => {
                    panic!(
                        "postfix on {target} never sent 220 ({banner:?}); log:\n{}",
                        self.log()
                    )
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// The `postfix` user's uid and gid (virtual(8) delivers as them).
fn postfix_ids() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postfix:"))
        .expect("no postfix user in /etc/passwd (apt-get install postfix)");
    let f: Vec<&str> = line.split(':').collect();
    (
        f[2].parse().expect("postfix uid"),
        f[3].parse().expect("postfix gid"),
    )
}

impl Drop for MaildirSink {
    fn drop(&mut self) {
        teardown(self.addr, &self.root);
    }
}

/// Minimal master.cf: no chroot (the instance has no chroot tree), smtpd, queue plumbing and
/// the `virtual` Maildir delivery agent. Deliberately no `smtp`/`relay`/`lmtp` client, so even
/// a misrouted message could never leave the host.
const MASTER_CF: &str = "\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
virtual   unix  -       n       n       -       -       virtual
";

fn check_prerequisites() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let root = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    assert!(
        root,
        "Postfix test harness needs root (ip addr add on lo, postfix start)"
    );
    let installed = Command::new("postconf")
        .args(["-h", "mail_version"])
        .output();
    assert!(
        matches!(&installed, Ok(o) if o.status.success())
            && Path::new("/usr/sbin/postfix").exists(),
        "Postfix is not installed (apt-get install postfix); the harness never skips silently"
    );
}

/// Picks a free `127.77.X.Y` and locks it. X starts at pid % 200 to spread processes apart;
/// the flock (not the starting point) is what guarantees uniqueness. Leftovers of a crashed
/// earlier holder of the address (running master, alias, directory) are cleaned up first.
fn allocate_address() -> (Ipv4Addr, File) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static REAP: Once = Once::new();
    fs::create_dir_all(BASE_DIR).expect("create /tmp/relayguard-postfix");
    // A predictable path in /tmp: refuse one that someone else could have planted.
    let owner = fs::metadata(BASE_DIR).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    assert_eq!(owner.ok(), Some(0), "{BASE_DIR} must be owned by root");
    chmod(Path::new(BASE_DIR), 0o755);
    REAP.call_once(reap_stale);
    let start = (std::process::id() % 200) * 250;
    for _ in 0..SLOTS {
        let slot = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SLOTS;
        // slot < SLOTS = 200 * 250, so both octets fit in a u8.
        let addr = Ipv4Addr::new(127, 77, (slot / 250) as u8, (slot % 250 + 1) as u8);
        let path = Path::new(BASE_DIR).join(format!("{addr}.lock"));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path);
        let lock = lock.unwrap_or_else(|e| panic!("open lock file {}: {e}", path.display()));
        if lock.try_lock().is_err() {
            continue; // held by another live instance
        }
        teardown(addr, &Path::new(BASE_DIR).join(addr.to_string()));
        // Something we cannot clean up (e.g. an orphaned smtpd) still owns port 25: skip it.
        let probe = TcpStream::connect_timeout(&(addr, 25).into(), Duration::from_millis(200));
        if probe.is_err() {
            return (addr, lock);
        }
    }
    panic!("no free 127.77.X.Y address for a Postfix instance");
}

/// Tears down every instance left behind by a killed test process: its directory still exists
/// but nobody holds its lock any more (flocks die with their process).
fn reap_stale() {
    for entry in fs::read_dir(BASE_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(addr) = name.strip_suffix(".lock").and_then(|a| a.parse().ok()) else {
            continue;
        };
        let root = Path::new(BASE_DIR).join(name.trim_end_matches(".lock"));
        // Keep the lock held across teardown so nobody reuses the address meanwhile.
        let Ok(lock) = File::open(entry.path()) else {
            continue;
        };
        if root.exists() && lock.try_lock().is_ok() {
            teardown(addr, &root);
        }
    }
}

/// Stops the instance rooted at `root` (if any), removes its alias and directory. Used by
/// Drop and, for stale leftovers, at allocation; every step tolerates "already gone".
fn teardown(addr: Ipv4Addr, root: &Path) {
    let etc = root.join("etc");
    if etc.join("main.cf").exists() {
        let pid = fs::read_to_string(root.join("spool/pid/master.pid")).unwrap_or_default();
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("stop")
            .output();
        // `postfix stop` only signals master; wait for it so the port and files are released.
        let pid = pid.trim();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pid.is_empty() && process_alive(pid) {
            if Instant::now() > deadline {
                let _ = Command::new("kill").args(["-KILL", pid]).output();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = Command::new("ip")
        .args(["addr", "del", &format!("{addr}/32"), "dev", "lo"])
        .output();
    let _ = fs::remove_dir_all(root);
}

/// True while `pid` exists and is not a zombie (our init reaps orphans only lazily).
fn process_alive(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a file and backdates its mtime: Postfix's `load_file()` re-reads a "hot" config file
/// (mtime within the last second or two) every 300 ms until it cools down, which would add ~2 s
/// to every start.
fn write_file(path: &Path, contents: &str) {
    let ctx = |e: std::io::Error| panic!("write {}: {e}", path.display());
    fs::write(path, contents).unwrap_or_else(ctx);
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(past))
        .unwrap_or_else(ctx);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}
