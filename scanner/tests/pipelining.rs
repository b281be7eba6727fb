//! PIPELINING (RFC 2920): a test's MAIL, RCPT and RSET go in one flight to a server that offers
//! it, and never to one that does not (postscreen and similar gates drop clients that talk
//! early). Scripted servers on loopback, which can see what arrived before they answered; the
//! verdicts against real Postfix, which offers PIPELINING, are checked in tests/postfix_sweep.rs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use relayguard_core::scan::{HostResult, TestKind, Verdict};
use relayguard_scanner::{AuditConfig, Pacer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

async fn audit(addr: SocketAddr) -> HostResult {
    let config = Arc::new(AuditConfig {
        ..relayguard_testkit::audit_config()
    });
    relayguard_scanner::audit::audit(
        addr.ip(),
        addr.port(),
        None,
        config,
        Arc::new(Pacer::new(None)),
    )
    .await
}

/// What a server saw: commands that came with others already behind them, before any reply.
#[derive(Default)]
struct Seen {
    /// MAIL commands whose RCPT and RSET had arrived before MAIL was answered.
    flights: AtomicUsize,
    /// MAIL commands in all.
    mails: AtomicUsize,
    /// Commands with another command already behind them before they were answered.
    early: AtomicUsize,
}

/// A closed server (every foreign recipient refused) that notes, before answering each command,
/// whether more commands are already waiting.
async fn serve(offer_pipelining: bool) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(converse(stream, offer_pipelining, s.clone()));
        }
    });
    (addr, seen)
}

async fn converse(stream: TcpStream, offer_pipelining: bool, seen: Arc<Seen>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let _ = write.write_all(b"220 mx.campus.test ESMTP\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        // Whatever the client sent without waiting is in the buffer by now (it is written in
        // one segment on loopback); a short wait covers a split write.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let waiting = read.buffer().iter().filter(|&&b| b == b'\n').count();
        if waiting > 0 {
            seen.early.fetch_add(1, Ordering::SeqCst);
        }
        if cmd.starts_with("MAIL") {
            seen.mails.fetch_add(1, Ordering::SeqCst);
            let behind = String::from_utf8_lossy(read.buffer()).to_ascii_uppercase();
            if behind.starts_with("RCPT TO:") && behind.contains("\nRSET\r\n") {
                seen.flights.fetch_add(1, Ordering::SeqCst);
            }
        }
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            if offer_pipelining {
                b"250-mx.campus.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            } else {
                b"250-mx.campus.test\r\n250 8BITMIME\r\n"
            }
        } else if cmd.starts_with("MAIL") || cmd.starts_with("RSET") {
            b"250 2.0.0 Ok\r\n"
        } else if cmd.starts_with("QUIT") {
            b"221 2.0.0 Bye\r\n"
        } else {
            b"550 5.7.1 Relay access denied\r\n"
        };
        if write.write_all(reply).await.is_err() || cmd.starts_with("QUIT") {
            return;
        }
    }
}

fn relay_tests(r: &HostResult) -> Vec<&relayguard_core::scan::TestResult> {
    r.tests
        .iter()
        .filter(|t| t.kind == TestKind::Relay)
        .collect()
}

#[tokio::test]
async fn a_server_that_offers_pipelining_gets_each_envelope_in_one_flight() {
    let (addr, seen) = serve(true).await;
    let r = audit(addr).await;
    let relay = relay_tests(&r);
    assert!(relay.len() > 10, "{r:#?}");
    assert!(
        relay.iter().all(|t| t.verdict == Verdict::Refused),
        "{relay:#?}"
    );
    let (mails, flights) = (
        seen.mails.load(Ordering::SeqCst),
        seen.flights.load(Ordering::SeqCst),
    );
    assert!(mails >= relay.len(), "{mails} MAIL commands");
    assert_eq!(flights, mails, "every MAIL came with its RCPT and RSET");
    assert!(
        !r.findings
            .iter()
            .any(|f| f.kind == relayguard_core::FindingKind::SmtpDesync),
        "{:#?}",
        r.findings
    );
}

#[tokio::test]
async fn a_server_that_does_not_offer_pipelining_is_never_talked_to_early() {
    let (addr, seen) = serve(false).await;
    let r = audit(addr).await;
    let relay = relay_tests(&r);
    assert!(relay.len() > 10, "{r:#?}");
    assert!(
        relay.iter().all(|t| t.verdict == Verdict::Refused),
        "{relay:#?}"
    );
    assert!(seen.mails.load(Ordering::SeqCst) >= relay.len());
    assert_eq!(seen.early.load(Ordering::SeqCst), 0, "commands sent early");
}
