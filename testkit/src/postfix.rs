//! Real Debian Postfix instances on loopback aliases, for relayguard's integration tests: the
//! personalities the scanner is tested against, and a Maildir sink for what `relayguard notify`
//! sends.
//!
//! Every instance gets its own `127.77.X.Y` alias on `lo`, its own config, queue and data
//! directories under `/tmp/relayguard-postfix/127.77.X.Y/`, and logs to a plain file. All
//! transports are `discard:`, except the sink's virtual(8) into its own Maildir, and master.cf has
//! no SMTP/LMTP client at all, so nothing is ever sent off the machine. Needs root and the Debian
//! `postfix` package.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Parent domain of every instance's `myhostname` (`pfN.campus.test`); the
/// [`Personality::UntrustedRouting`] instance relays for it as a backup MX.
pub const DOMAIN: &str = "campus.test";

/// Holds instance directories and the per-address lock files. Must be world-traversable
/// because the Postfix daemons run as the unprivileged `postfix` user.
const BASE_DIR: &str = "/tmp/relayguard-postfix";

/// Number of `127.77.X.Y` addresses we hand out: X in 0..200, Y in 1..=250.
const SLOTS: u32 = 200 * 250;

/// Behaviour of a started instance, as seen by an untrusted client (outside `mynetworks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// Relays anything for anyone: `smtpd_relay_restrictions = check_client_access static:OK, ...`
    /// (every client is OK) and `smtpd_recipient_restrictions = permit`.
    OpenRelay,
    /// Relays anything like [`Personality::OpenRelay`], but answers every RCPT only after a
    /// second (`smtpd_recipient_restrictions = sleep 1, permit`), as a real relay does whose
    /// recipient lookup goes to a policy service or a slow resolver. Nothing is held back after
    /// errors: the slowness is in the positive answers.
    SlowOpenRelay,
    /// Stock Debian policy: `defer_unauth_destination` (454 4.7.1 Relay access denied),
    /// unknown local users rejected at RCPT (550 5.1.1), VRFY enabled.
    Closed,
    /// `reject_unauth_destination` (554 5.7.1), unknown local users rejected, VRFY disabled.
    ClosedStrict,
    /// Closed for relay but `local_recipient_maps` is empty, so any local recipient gets 250.
    Backscatter,
    /// Like `ClosedStrict`, plus opportunistic STARTTLS with a self-signed certificate whose
    /// CN and SAN are the instance's `myhostname`.
    StartTlsSelfSigned,
    /// Catch-all backup MX: `relay_domains = campus.test` ([`DOMAIN`]), `relay_recipient_maps`
    /// left empty (Postfix's default: any recipient there is accepted),
    /// `allow_untrusted_routing = yes`, `reject_unauth_destination`. Accepts
    /// `user%ext.example@campus.test` and any unknown user at campus.test for the primary, but
    /// refuses `user@ext.example` (554 5.7.1).
    UntrustedRouting,
}

/// What an instance is started as.
enum Setup<'a> {
    /// A personality, as seen by an untrusted client.
    Personality(Personality),
    /// A sink delivering mail for these domains into a Maildir.
    MaildirSink(&'a [&'a str]),
}

/// A running Postfix instance; stopped and cleaned up on drop.
#[derive(Debug)]
pub struct Postfix {
    /// The address it listens on: its `127.77.X.Y` slot, or the address given in a namespace.
    addr: Ipv4Addr,
    /// The `127.77.X.Y` slot that names its directory and lock (equal to `addr` on loopback).
    slot: Ipv4Addr,
    /// The network namespace it runs in, when not the test's own.
    netns: Option<String>,
    hostname: String,
    root: PathBuf,
    /// flock on `BASE_DIR/<addr>.lock`, held for the instance's lifetime; it is what makes
    /// the address ours across threads and test processes (released even if we crash).
    _lock: File,
}

/// The address the scanner (and test clients) should bind to: outside every instance's
/// `mynetworks` (127.0.0.1/32), so Postfix treats it as an untrusted client. Linux routes all of
/// 127/8 to `lo`, so it can be bound without an alias.
pub fn scanner_source_addr() -> Ipv4Addr {
    Ipv4Addr::new(127, 66, 0, 1)
}

impl Postfix {
    /// Starts an instance; blocks until it answers 220 on `addr():25`. Panics with a clear
    /// message if Postfix is missing, we are not root, or the instance does not come up.
    pub fn start(p: Personality) -> Postfix {
        Postfix::launch(Setup::Personality(p), None)
    }

    /// Starts an instance inside the network namespace `netns` (which the caller created and
    /// deletes after dropping the instance), listening on `listen`, an address this adds to the
    /// namespace's `lo`. Its banner is awaited from inside the namespace.
    pub fn start_in_netns(p: Personality, netns: &str, listen: Ipv4Addr) -> Postfix {
        Postfix::launch(Setup::Personality(p), Some((netns, listen)))
    }

    /// Starts an instance that accepts mail for `domains` (any local part) from loopback and
    /// delivers it into one Maildir (virtual(8)); nothing else is delivered. For tests of what
    /// relayguard sends (`relayguard notify`): see [`Postfix::wait_for`].
    pub fn start_maildir_sink(domains: &[&str]) -> Postfix {
        Postfix::launch(Setup::MaildirSink(domains), None)
    }

    fn launch(setup: Setup<'_>, netns: Option<(&str, Ipv4Addr)>) -> Postfix {
        check_prerequisites();
        let (slot, lock) = allocate_address();
        let [_, _, x, y] = slot.octets();
        let hostname = format!("pf{}.{DOMAIN}", u32::from(x) * 256 + u32::from(y));
        let root = Path::new(BASE_DIR).join(slot.to_string());
        // Construct the guard before any side effect so a failure below still cleans up.
        let pf = Postfix {
            addr: netns.map_or(slot, |(_, listen)| listen),
            slot,
            netns: netns.map(|(ns, _)| ns.to_string()),
            hostname,
            root,
            _lock: lock,
        };
        match setup {
            Setup::Personality(p) => pf.write_config(p),
            Setup::MaildirSink(domains) => pf.write_sink_config(domains),
        }
        let addr = pf.addr;
        run(pf
            .in_netns("ip")
            .args(["addr", "add", &format!("{addr}/32"), "dev", "lo"]));
        run(pf
            .in_netns("postfix")
            .arg("-c")
            .arg(pf.root.join("etc"))
            .arg("start"));
        pf.wait_for_banner();
        pf
    }

    /// A command that runs in the instance's namespace.
    fn in_netns(&self, program: &str) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, program]);
                cmd
            }
        }
    }

    /// The instance's own loopback address (`127.77.X.Y`, aliased on `lo`); it listens on port 25.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The instance's `myhostname`, e.g. `pf769.campus.test` (also in `mydestination`).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Contents of the instance's `maillog_file` (written asynchronously by postlogd, so a
    /// line may appear a few milliseconds after the SMTP reply).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("maillog")).unwrap_or_default()
    }

    /// `smtp://ADDR:25`, for `notify --smtp`.
    pub fn smtp_url(&self) -> String {
        format!("smtp://{}:25", self.addr)
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

    fn write_sink_config(&self, domains: &[&str]) {
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

    /// Turns on STARTTLS with this key and certificate chain (PEM) and reloads: for a sink
    /// whose certificate must name its address, which is only known once it runs. Returns when
    /// EHLO offers STARTTLS.
    pub fn enable_tls(&self, key_pem: &str, chain_pem: &str) {
        let etc = self.root.join("etc");
        write_file(&etc.join("tls-key.pem"), key_pem);
        chmod(&etc.join("tls-key.pem"), 0o600);
        write_file(&etc.join("tls-chain.pem"), chain_pem);
        let e = etc.display();
        run(Command::new("postconf").arg("-c").arg(&etc).args([
            "-e",
            "smtpd_tls_security_level = may",
            "smtpd_tls_loglevel = 1",
            &format!("smtpd_tls_chain_files = {e}/tls-key.pem, {e}/tls-chain.pem"),
        ]));
        run(Command::new("postfix").arg("-c").arg(&etc).arg("reload"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.offers_starttls() {
            assert!(
                Instant::now() < deadline,
                "no STARTTLS after reload; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Gives the instance an SMTP client (master.cf `smtp`) and routes with these main.cf
    /// settings, e.g. `relayhost = [127.66.0.1]:2525` or
    /// `relay_transport = smtp:[127.77.0.9]:25`, then reloads. For the tests of `--confirm` only:
    /// every route given must end at an address of the test itself on loopback.
    pub fn route_by_smtp(&self, settings: &[&str]) {
        let etc = self.root.join("etc");
        let master =
            format!("{MASTER_CF}smtp      unix  -       -       n       -       -       smtp\n");
        write_file(&etc.join("master.cf"), &master);
        let mut all = vec![
            "smtp_host_lookup = native",
            "smtp_tls_security_level = none",
        ];
        all.extend_from_slice(settings);
        self.reconfigure(&all);
    }

    /// Changes main.cf settings (`name = value`) with postconf and reloads.
    pub fn reconfigure(&self, settings: &[&str]) {
        let etc = self.root.join("etc");
        run(Command::new("postconf")
            .arg("-c")
            .arg(&etc)
            .arg("-e")
            .args(settings));
        run(Command::new("postfix").arg("-c").arg(&etc).arg("reload"));
        // The reloaded master serves new connections with the new settings once its children
        // have restarted; the banner shows it is back.
        std::thread::sleep(Duration::from_millis(500));
        self.wait_for_banner();
    }

    /// Puts postscreen(8) in front of smtpd, as on most Postfix MXes, with its deep protocol
    /// tests on and enforced (pipelining, non-SMTP commands, bare newlines) and the pregreet
    /// test enforced with a `greet_wait` long greeting: postscreen sends `220-`, waits, then the
    /// final `220 `. A client that passes is deferred (`450 4.3.2`) at every RCPT of that first
    /// session and reaches the real smtpd only when it connects again. Its own clients
    /// (`mynetworks`, and the instance's own address, from which the harness's checks come) are
    /// let through at once, so the harness never touches the cache. Violations are logged as `PREGREET`,
    /// `COMMAND PIPELINING`, `NON-SMTP COMMAND` and `BARE NEWLINE`.
    pub fn enable_postscreen(&self, greet_wait: Duration) {
        let etc = self.root.join("etc");
        // The harness's own checks leave from the instance's address (the alias is the source
        // the kernel picks for it): let them through like `mynetworks`.
        let trusted = etc.join("postscreen_access.cidr");
        write_file(&trusted, &format!("{}/32 permit\n", self.addr));
        let access = format!(
            "postscreen_access_list = permit_mynetworks, cidr:{}",
            trusted.display()
        );
        let wait = format!("postscreen_greet_wait = {}s", greet_wait.as_secs().max(1));
        run(Command::new("postconf").arg("-c").arg(&etc).args([
            "-e",
            &wait,
            &access,
            "postscreen_greet_action = enforce",
            "postscreen_pipelining_enable = yes",
            "postscreen_pipelining_action = enforce",
            "postscreen_non_smtp_command_enable = yes",
            "postscreen_non_smtp_command_action = enforce",
            "postscreen_bare_newline_enable = yes",
            "postscreen_bare_newline_action = enforce",
            "postscreen_cache_map = btree:$data_directory/postscreen_cache",
        ]));
        let master = MASTER_CF.replacen(
            "smtp      inet  n       -       n       -       -       smtpd\n",
            POSTSCREEN_SERVICES,
            1,
        );
        write_file(&etc.join("master.cf"), &master);
        run(Command::new("postfix").arg("-c").arg(&etc).arg("reload"));
        std::thread::sleep(Duration::from_millis(500));
        self.wait_for_banner();
    }

    /// Adds a policy service (`check_policy_service inet:ADDR`) first in
    /// `smtpd_recipient_restrictions` and reloads: a greylisting daemon such as postgrey, which
    /// defers a (client, sender, recipient) triplet it has not seen long enough.
    pub fn add_policy_service(&self, addr: SocketAddr) {
        let etc = self.root.join("etc");
        let current = Command::new("postconf")
            .arg("-c")
            .arg(&etc)
            .args(["-h", "smtpd_recipient_restrictions"])
            .output()
            .expect("postconf");
        let current = String::from_utf8_lossy(&current.stdout).trim().to_string();
        let restrictions = if current.is_empty() {
            format!("check_policy_service inet:{addr}")
        } else {
            format!("check_policy_service inet:{addr}, {current}")
        };
        self.reconfigure(&[&format!("smtpd_recipient_restrictions = {restrictions}")]);
    }

    /// Turns on SMTP AUTH (Cyrus SASL, PLAIN/LOGIN against a sasldb of this instance's own)
    /// with one user, and reloads; successful logins show as `sasl_username=` in the log.
    pub fn enable_sasl(&self, user: &str, password: &str) {
        let etc = self.root.join("etc");
        let sasl = etc.join("sasl");
        fs::create_dir_all(&sasl).expect("create the SASL config directory");
        let db = etc.join("sasldb2");
        let mut child = Command::new("saslpasswd2")
            .args(["-p", "-c", "-f"])
            .arg(&db)
            .args(["-u", DOMAIN, user])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("saslpasswd2 (Debian package sasl2-bin)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("write the password");
        assert!(
            child.wait().expect("saslpasswd2").success(),
            "saslpasswd2 failed"
        );
        // smtpd runs as the postfix user and reads the database then.
        let (uid, gid) = postfix_ids();
        std::os::unix::fs::chown(&db, Some(uid), Some(gid)).expect("chown sasldb");
        write_file(
            &sasl.join("smtpd.conf"),
            &format!(
                "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {}\nmech_list: PLAIN LOGIN\n",
                db.display()
            ),
        );
        run(Command::new("postconf").arg("-c").arg(&etc).args([
            "-e",
            "smtpd_sasl_auth_enable = yes",
            "smtpd_sasl_type = cyrus",
            "smtpd_sasl_path = smtpd",
            &format!("cyrus_sasl_config_path = {}", sasl.display()),
            &format!("smtpd_sasl_local_domain = {DOMAIN}"),
        ]));
        run(Command::new("postfix").arg("-c").arg(&etc).arg("reload"));
        std::thread::sleep(Duration::from_millis(500));
    }

    fn offers_starttls(&self) -> bool {
        let talk = || -> std::io::Result<bool> {
            let s = TcpStream::connect_timeout(
                &SocketAddr::from((self.addr, 25)),
                Duration::from_secs(1),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut reader = BufReader::new(&s);
            let mut line = String::new();
            reader.read_line(&mut line)?;
            (&s).write_all(b"EHLO probe.test\r\n")?;
            let mut offered = false;
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                offered |= line.contains("STARTTLS");
                if !line.starts_with("250-") {
                    break;
                }
            }
            (&s).write_all(b"QUIT\r\n")?;
            Ok(offered)
        };
        talk().unwrap_or(false)
    }

    fn write_config(&self, p: Personality) {
        let (root, etc) = (&self.root, self.root.join("etc"));
        fs::create_dir_all(&etc).expect("create instance config directory");
        chmod(root, 0o755);
        // Queue and data directories must NOT live under config_directory: postfix-script
        // checks the config tree for non-root files and would warn about every queue dir.
        // `postfix start` (post-install) creates their subdirectories with the right owners.
        fs::create_dir_all(root.join("spool")).expect("create queue directory");
        let r = root.display();
        let mut main = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {r}/spool\ndata_directory = {r}/data\n\
             meta_directory = /etc/postfix\n\
             maillog_file = {r}/maillog\nmaillog_file_prefixes = {r}\n\
             inet_interfaces = {addr}\ninet_protocols = ipv4\n\
             mynetworks = 127.0.0.1/32\nmyhostname = {host}\nmydomain = {DOMAIN}\n\
             mydestination = $myhostname, localhost\nmyorigin = $myhostname\n\
             default_transport = discard:\nrelay_transport = discard:\nlocal_transport = discard:\n\
             smtp_dns_support_level = disabled\nsmtpd_peername_lookup = no\nbiff = no\n\
             alias_maps =\nalias_database =\n\
             smtpd_soft_error_limit = 10\nsmtpd_hard_error_limit = 20\n",
            addr = self.addr,
            host = self.hostname,
        );
        // A fixed user table: `postmaster` is normally an alias, not a passwd user, so
        // unix:passwd.byname alone would reject it; inline: needs no postmap either.
        let users = "local_recipient_maps = inline:{postmaster=ok, root=ok, abuse=ok}\n";
        let stock = "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, \
                     defer_unauth_destination\n";
        let strict = "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
                      disable_vrfy_command = yes\n";
        main += match p {
            // smtpd refuses to start unless a working *_unauth_destination is listed (its relay
            // safety net, which also sees through a literal `permit` before it); a lookup that
            // answers OK for every client permits everything while satisfying that check.
            Personality::OpenRelay => {
                "smtpd_relay_restrictions = check_client_access static:OK, reject_unauth_destination\n\
                 smtpd_recipient_restrictions = permit\n"
            }
            Personality::SlowOpenRelay => {
                "smtpd_relay_restrictions = check_client_access static:OK, reject_unauth_destination\n\
                 smtpd_recipient_restrictions = sleep 1, permit\n"
            }
            Personality::Closed | Personality::Backscatter => stock,
            Personality::ClosedStrict | Personality::StartTlsSelfSigned => strict,
            Personality::UntrustedRouting => {
                "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
                 relay_domains = $mydomain\nallow_untrusted_routing = yes\n"
            }
        };
        main += if p == Personality::Backscatter {
            "local_recipient_maps =\n"
        } else {
            users
        };
        if p == Personality::StartTlsSelfSigned {
            let mut params = rcgen::CertificateParams::new(vec![self.hostname.clone()])
                .expect("hostname is a valid SAN");
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, self.hostname.as_str());
            let key = rcgen::KeyPair::generate().expect("generate TLS key");
            let cert = params.self_signed(&key).expect("self-sign certificate");
            write_file(&etc.join("cert.pem"), &cert.pem());
            write_file(&etc.join("key.pem"), &key.serialize_pem());
            chmod(&etc.join("key.pem"), 0o600); // smtpd loads it as root, before dropping privileges
            main += &format!(
                "smtpd_tls_security_level = may\n\
                 smtpd_tls_chain_files = {e}/key.pem, {e}/cert.pem\n",
                e = etc.display()
            );
        }
        write_file(&etc.join("main.cf"), &main);
        write_file(&etc.join("master.cf"), MASTER_CF);
    }

    fn wait_for_banner(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = SocketAddr::from((self.addr, 25));
        loop {
            let banner = if self.netns.is_some() {
                self.banner_in_netns()
            } else {
                TcpStream::connect_timeout(&target, Duration::from_secs(1)).and_then(|s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    let mut line = String::new();
                    BufReader::new(&s).read_line(&mut line)?;
                    (&s).write_all(b"QUIT\r\n")?;
                    Ok(line)
                })
            };
            match banner {
                Ok(line) if line.starts_with("220 ") => return,
                // A fatal config error makes master throttle smtpd forever: fail fast.
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

impl Postfix {
    /// The first line the instance sends, read from inside its namespace with bash's
    /// `/dev/tcp` (the test process itself lives outside it).
    fn banner_in_netns(&self) -> std::io::Result<String> {
        let script = format!(
            "exec 3<>/dev/tcp/{}/25 && IFS= read -r -t 2 line <&3 && printf '%s\\n' \"$line\" && printf 'QUIT\\r\\n' >&3",
            self.addr
        );
        let out = self
            .in_netns("timeout")
            .args(["3", "bash", "-c", &script])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Some(ns) = &self.netns {
            // postfix refuses to run where its inet_interfaces address does not exist: stop it
            // from inside its namespace; teardown below then only waits for it and cleans up.
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "postfix", "-c"])
                .arg(self.root.join("etc"))
                .arg("stop")
                .output();
        }
        teardown(self.slot, &self.root);
    }
}

/// Minimal master.cf: no chroot (the instance has no chroot tree), only the services smtpd
/// needs for RCPT-time checks plus queue plumbing. Deliberately no `smtp`/`relay`/`lmtp`
/// client, so even a misrouted message could never leave the host.
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
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// The services that put postscreen(8) in front of smtpd (replacing the plain `smtp` line):
/// postscreen takes the port with a single process and passes good clients to smtpd; dnsblog
/// and tlsproxy are the helpers it needs. No chroot, as everywhere in these instances.
const POSTSCREEN_SERVICES: &str = "\
smtp      inet  n       -       n       -       1       postscreen
smtpd     pass  -       -       n       -       -       smtpd
dnsblog   unix  -       -       n       -       0       dnsblog
tlsproxy  unix  -       -       n       -       0       tlsproxy
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
    // `-d` reads the compiled-in defaults: a Postfix installed with "No configuration" has no
    // /etc/postfix/main.cf, and the instances never read it anyway (each has its own `-c`).
    let installed = Command::new("postconf")
        .args(["-d", "-h", "mail_version"])
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
