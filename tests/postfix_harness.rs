//! Proves the real-Postfix harness in `relayguard_testkit::postfix`: every personality answers
//! the RCPT/VRFY probes exactly as documented, instances run side by side, and dropping an
//! instance leaves no master process and no loopback alias behind.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use relayguard_testkit::{DOMAIN, Personality, Postfix, scanner_source_addr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A minimal SMTP client; normally bound to `scanner_source_addr()`, i.e. an untrusted client.
struct Client {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Client {
    /// Connects from `scanner_source_addr()`, reads the banner (which must be 220) and says
    /// EHLO; returns the EHLO reply.
    async fn connect(pf: &Postfix) -> (Client, String) {
        Client::connect_from(pf, scanner_source_addr()).await
    }

    /// Like [`Client::connect`], but from an explicit source address.
    async fn connect_from(pf: &Postfix, src: Ipv4Addr) -> (Client, String) {
        let sock = TcpSocket::new_v4().expect("create socket");
        sock.bind(SocketAddr::from((src, 0)))
            .expect("bind source address (any 127/8 address is bindable on Linux)");
        let stream = sock
            .connect((pf.addr(), 25).into())
            .await
            .expect("connect to postfix");
        let (rd, wr) = stream.into_split();
        let mut c = Client {
            rd: BufReader::new(rd),
            wr,
        };
        let banner = c.reply().await;
        assert!(
            banner.starts_with(&format!("220 {} ESMTP", pf.hostname())),
            "{banner}"
        );
        let ehlo = c.cmd("EHLO scanner.invalid").await;
        assert!(ehlo.starts_with("250-"), "{ehlo}");
        (c, ehlo)
    }

    /// Reads one (possibly multi-line) reply; lines are joined with '\n', CRLF stripped.
    async fn reply(&mut self) -> String {
        let mut all = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.rd.read_line(&mut line).await.expect("read reply");
            assert!(n > 0, "server closed the connection after {all:?}");
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            all.push(line);
            if last {
                return all.join("\n");
            }
        }
    }

    /// Sends one command line and returns its reply.
    async fn cmd(&mut self, line: &str) -> String {
        self.wr
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("send command");
        self.reply().await
    }
}

/// One untrusted session: MAIL FROM a foreign sender, then RCPT TO `to`; returns the RCPT reply.
async fn rcpt(pf: &Postfix, to: &str) -> String {
    rcpt_from(pf, scanner_source_addr(), to).await
}

/// Like [`rcpt`], but connecting from `src`.
async fn rcpt_from(pf: &Postfix, src: Ipv4Addr, to: &str) -> String {
    let (mut c, _) = Client::connect_from(pf, src).await;
    let mail = c.cmd("MAIL FROM:<probe@scanner.invalid>").await;
    assert_eq!(mail, "250 2.1.0 Ok");
    let reply = c.cmd(&format!("RCPT TO:<{to}>")).await;
    c.cmd("QUIT").await;
    eprintln!("{} from {src}: RCPT TO:<{to}> -> {reply}", pf.hostname());
    reply
}

/// One session: `VRFY user`; returns the reply.
async fn vrfy(pf: &Postfix, user: &str) -> String {
    let (mut c, _) = Client::connect(pf).await;
    let reply = c.cmd(&format!("VRFY {user}")).await;
    c.cmd("QUIT").await;
    eprintln!("{} VRFY {user} -> {reply}", pf.hostname());
    reply
}

#[tokio::test]
async fn open_relay_accepts_external_recipient() {
    let started = std::time::Instant::now();
    let pf = Postfix::start(Personality::OpenRelay);
    eprintln!("{} started in {:?}", pf.hostname(), started.elapsed());
    assert_eq!(rcpt(&pf, "user@external.example").await, "250 2.1.5 Ok");
}

#[tokio::test]
async fn closed_defers_relay_and_rejects_unknown_users() {
    let pf = Postfix::start(Personality::Closed);
    let host = pf.hostname().to_string();
    assert_eq!(
        rcpt(&pf, "user@external.example").await,
        "454 4.7.1 <user@external.example>: Relay access denied"
    );
    // The percent hack rewrites this to user@ext.example, which is still relaying.
    let routed = format!("user%ext.example@{host}");
    assert_eq!(
        rcpt(&pf, &routed).await,
        format!("454 4.7.1 <{routed}>: Relay access denied")
    );
    let unknown = format!("random-unknown-7q3z@{host}");
    assert_eq!(
        rcpt(&pf, &unknown).await,
        format!(
            "550 5.1.1 <{unknown}>: Recipient address rejected: User unknown in local recipient table"
        )
    );
    assert_eq!(
        rcpt(&pf, &format!("postmaster@{host}")).await,
        "250 2.1.5 Ok"
    );
    assert_eq!(rcpt(&pf, &format!("root@{host}")).await, "250 2.1.5 Ok");
    assert_eq!(vrfy(&pf, "postmaster").await, "252 2.0.0 postmaster");
    assert_eq!(
        vrfy(&pf, "random-unknown-7q3z").await,
        "550 5.1.1 <random-unknown-7q3z>: Recipient address rejected: \
         User unknown in local recipient table"
    );
    // The vantage point matters: from 127.0.0.1 (mynetworks) the same server relays.
    let trusted = rcpt_from(&pf, Ipv4Addr::LOCALHOST, "user@external.example").await;
    assert_eq!(trusted, "250 2.1.5 Ok");
    // The scanner's view is from outside mynetworks; the log must say so.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        pf.log()
            .contains(&format!("from unknown[{}]", scanner_source_addr())),
        "{}",
        pf.log()
    );
}

#[tokio::test]
async fn closed_strict_rejects_relay_and_disables_vrfy() {
    let pf = Postfix::start(Personality::ClosedStrict);
    let host = pf.hostname().to_string();
    assert_eq!(
        rcpt(&pf, "user@external.example").await,
        "554 5.7.1 <user@external.example>: Relay access denied"
    );
    let unknown = format!("random-unknown-7q3z@{host}");
    assert!(rcpt(&pf, &unknown).await.starts_with("550 5.1.1 "));
    assert_eq!(
        rcpt(&pf, &format!("postmaster@{host}")).await,
        "250 2.1.5 Ok"
    );
    assert_eq!(
        vrfy(&pf, "postmaster").await,
        "502 5.5.1 VRFY command is disabled"
    );
}

#[tokio::test]
async fn backscatter_accepts_any_local_recipient() {
    let pf = Postfix::start(Personality::Backscatter);
    let host = pf.hostname().to_string();
    assert_eq!(
        rcpt(&pf, &format!("random-unknown-7q3z@{host}")).await,
        "250 2.1.5 Ok"
    );
    assert!(
        rcpt(&pf, "user@external.example")
            .await
            .starts_with("454 4.7.1 ")
    );
}

#[tokio::test]
async fn starttls_self_signed_offers_tls_with_its_hostname() {
    let pf = Postfix::start(Personality::StartTlsSelfSigned);
    let (mut c, ehlo) = Client::connect(&pf).await;
    eprintln!("{} EHLO reply:\n{ehlo}", pf.hostname());
    assert!(ehlo.lines().any(|l| l == "250-STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS");
    drop(c);
    assert!(
        rcpt(&pf, "user@external.example")
            .await
            .starts_with("554 5.7.1 ")
    );
    // Full handshake with openssl to check the certificate really names the host.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &format!("{}:25", pf.addr()),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let subject = text
        .lines()
        .find(|l| l.starts_with("subject="))
        .expect("no certificate");
    eprintln!("{} certificate {subject}", pf.hostname());
    assert!(subject.ends_with(pf.hostname()), "{subject}");
}

#[tokio::test]
async fn untrusted_routing_relays_percent_routed_addresses_only() {
    let pf = Postfix::start(Personality::UntrustedRouting);
    let routed = format!("user%ext.example@{DOMAIN}");
    assert_eq!(rcpt(&pf, &routed).await, "250 2.1.5 Ok");
    assert_eq!(
        rcpt(&pf, "user@ext.example").await,
        "554 5.7.1 <user@ext.example>: Relay access denied"
    );
    // Via its own hostname (a local domain) the percent hack unwraps it: still refused.
    let via_host = format!("user%ext.example@{}", pf.hostname());
    let reply = rcpt(&pf, &via_host).await;
    assert_eq!(
        reply,
        format!("554 5.7.1 <{via_host}>: Relay access denied")
    );
}

#[test]
fn instances_run_in_parallel_and_clean_up() {
    let threads: Vec<_> = [Personality::OpenRelay, Personality::ClosedStrict]
        .into_iter()
        .map(|p| std::thread::spawn(move || Postfix::start(p)))
        .collect();
    let pfs: Vec<Postfix> = threads
        .into_iter()
        .map(|t| t.join().expect("start"))
        .collect();
    assert_ne!(pfs[0].addr(), pfs[1].addr());
    assert_ne!(pfs[0].hostname(), pfs[1].hostname());
    let addrs: Vec<_> = pfs.iter().map(|p| p.addr().to_string()).collect();
    let pids: Vec<_> = pfs.iter().map(master_pid).collect();
    for pf in &pfs {
        std::net::TcpStream::connect((pf.addr(), 25)).expect("both instances listen");
    }
    drop(pfs);
    let lo = Command::new("ip")
        .args(["-o", "addr", "show", "dev", "lo"])
        .output();
    let lo = String::from_utf8_lossy(&lo.expect("run ip").stdout).into_owned();
    for (addr, pid) in addrs.iter().zip(&pids) {
        assert!(
            !lo.contains(&format!("inet {addr}/32")),
            "alias {addr} left on lo"
        );
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "master {pid} still running"
        );
    }
}

/// Reads the master pid from the instance's queue directory (layout is a harness detail).
fn master_pid(pf: &Postfix) -> String {
    let path = format!("/tmp/relayguard-postfix/{}/spool/pid/master.pid", pf.addr());
    std::fs::read_to_string(&path)
        .expect("master.pid")
        .trim()
        .to_string()
}
