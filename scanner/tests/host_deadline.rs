//! The host deadline is absolute: against scripted servers on loopback that stall in different
//! ways, with a command timeout far longer than the deadline, no audit of a port runs more than
//! a second past `host_deadline`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use relayguard_core::FindingKind;
use relayguard_core::scan::HostResult;
use relayguard_scanner::audit::DnsAudit;
use relayguard_scanner::dns::{Dns, DnsConfig};
use relayguard_scanner::{AuditConfig, Pacer, audit};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(2);
/// Far longer than the deadline: only the deadline can end these audits in time.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// What the deadline promises: at most a second past it.
const BOUND: Duration = Duration::from_secs(3);

fn config(dns: Option<DnsAudit>) -> Arc<AuditConfig> {
    Arc::new(AuditConfig {
        command_timeout: COMMAND_TIMEOUT,
        host_deadline: DEADLINE,
        dns,
        ..relayguard_testkit::audit_config()
    })
}

/// Audits `addr` and checks the time bound and that nothing false was concluded.
async fn audit_in_time(addr: SocketAddr, dns: Option<DnsAudit>) -> HostResult {
    let started = Instant::now();
    let r = audit(
        addr.ip(),
        addr.port(),
        None,
        config(dns),
        Arc::new(Pacer::new(None)),
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < BOUND,
        "took {took:?} with a {DEADLINE:?} host deadline"
    );
    let kinds: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    assert!(!kinds.contains(&FindingKind::OpenRelay), "{kinds:?}");
    assert!(
        !kinds.contains(&FindingKind::BackscatterSource),
        "{kinds:?}"
    );
    r
}

/// Serves every connection with `script`, counting connections.
async fn serve<F, Fut>(script: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(script(stream, n));
        }
    });
    (addr, count)
}

/// Greets, offers STARTTLS, says 220 to it, then hands the raw stream to `after`.
async fn starttls_then<F, Fut>(stream: TcpStream, after: F)
where
    F: FnOnce(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut stream = BufReader::new(stream);
    if stream
        .get_mut()
        .write_all(b"220 stall.test ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let reply: &[u8] = match line.trim_end().to_ascii_uppercase().as_str() {
            cmd if cmd.starts_with("EHLO") => b"250-stall.test\r\n250 STARTTLS\r\n",
            "STARTTLS" => {
                let _ = stream.get_mut().write_all(b"220 go ahead\r\n").await;
                after(stream.into_inner()).await;
                return;
            }
            _ => b"502 no\r\n",
        };
        if stream.get_mut().write_all(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_handshake_silent_after_the_client_hello_ends_at_the_deadline() {
    let (addr, _) = serve(|s, _| {
        starttls_then(s, |mut s| async move {
            let mut hello = [0u8; 512];
            let _ = s.read(&mut hello).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
    })
    .await;
    let r = audit_in_time(addr, None).await;
    assert!(r.error.is_some(), "{r:?}");
}

#[tokio::test]
async fn a_tls_record_announcing_16_kib_then_silence_ends_at_the_deadline() {
    let (addr, _) = serve(|s, _| {
        starttls_then(s, |mut s| async move {
            let mut hello = [0u8; 512];
            let _ = s.read(&mut hello).await;
            // A handshake record header promising 16 KiB that never comes.
            let _ = s.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
    })
    .await;
    audit_in_time(addr, None).await;
}

#[tokio::test]
async fn a_greeting_dripping_one_byte_a_second_ends_at_the_deadline() {
    let (addr, _) = serve(|mut s, _| async move {
        for b in b"220 drip.test ESMTP slowly\r\n" {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    let r = audit_in_time(addr, None).await;
    assert!(r.tests.is_empty());
}

#[tokio::test]
async fn endless_continuation_lines_end_at_the_deadline() {
    let (addr, _) = serve(|mut s, _| async move {
        loop {
            if s.write_all(b"220-still greeting\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    audit_in_time(addr, None).await;
}

#[tokio::test]
async fn a_server_answering_421_to_every_reconnect_is_left_in_time() {
    // The first session answers slowly (900 ms a reply) and hangs up at the first RCPT; every
    // later connection is told 421.
    let (addr, count) = serve(|stream, n| async move {
        let mut stream = BufReader::new(stream);
        if n > 1 {
            let _ = stream
                .get_mut()
                .write_all(b"421 4.3.2 too many connections\r\n")
                .await;
            return;
        }
        let _ = stream.get_mut().write_all(b"220 flap.test ESMTP\r\n").await;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(900)).await;
            let cmd = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if cmd.starts_with("EHLO") {
                b"250 flap.test\r\n"
            } else if cmd.starts_with("RCPT") {
                return;
            } else {
                b"250 ok\r\n"
            };
            if stream.get_mut().write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    audit_in_time(addr, None).await;
    assert!(count.load(Ordering::SeqCst) <= 6, "{count:?} connections");
}

#[tokio::test]
async fn a_silent_resolver_does_not_hold_the_audit_past_the_deadline() {
    // A blocklist resolver that never answers (3 s per try, 2 tries by default) beside an SMTP
    // server that refuses everything at once.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = udp.local_addr().unwrap();
    let _tcp = std::net::TcpListener::bind(resolver).ok();
    let dns = DnsAudit {
        dns: Dns::new(&DnsConfig::with_servers(vec![resolver])).unwrap(),
        dnsbl_zones: vec!["dnsbl.test".into()],
    };
    let (addr, _) = serve(|stream, _| async move {
        let mut stream = BufReader::new(stream);
        let _ = stream.get_mut().write_all(b"220 mx.test ESMTP\r\n").await;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if cmd.starts_with("EHLO") {
                b"250 mx.test\r\n"
            } else if cmd == "QUIT" {
                b"221 bye\r\n"
            } else {
                b"550 5.7.1 no\r\n"
            };
            if stream.get_mut().write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let r = audit_in_time(addr, Some(dns)).await;
    assert!(!r.tests.is_empty());
    assert!(
        r.notes
            .iter()
            .any(|n| n == "DNS blocklists not checked: host deadline reached"),
        "{:?}",
        r.notes
    );
}
