//! Stopping a probe once a decisive test settled its verdict, and withdrawing that decision when
//! the session that made it turns out to have been out of turn. Scripted servers on loopback;
//! the early stop against real Postfix is tested in tests/postfix_sweep.rs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use relayguard_core::FindingKind;
use relayguard_core::scan::{HostResult, TestKind, Verdict};
use relayguard_scanner::{AuditConfig, Pacer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One session per host holding every test, so the decision and its withdrawal happen in the
/// same sequence of sessions.
async fn audit(addr: SocketAddr) -> HostResult {
    let config = Arc::new(AuditConfig {
        sessions_per_host: 1,
        tests_per_session: 100,
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

/// An open relay (no PIPELINING, so every command is answered in turn) that, the first time a
/// plainly external recipient is accepted, sends one more `250` a moment later: that session's
/// verdicts cannot be trusted.
async fn relay_out_of_turn_once() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let slipped = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let slipped = slipped.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                let _ = write.write_all(b"220 relay.example ESMTP\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250 relay.example\r\n"
                    } else if cmd.starts_with("QUIT") {
                        b"221 Bye\r\n"
                    } else if cmd.starts_with("VRFY") || cmd.starts_with("EXPN") {
                        b"502 5.5.1 no\r\n"
                    } else {
                        b"250 2.0.0 Ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() || cmd.starts_with("QUIT") {
                        return;
                    }
                    if cmd == "RCPT TO:<VICTIM@EXT.EXAMPLE>"
                        && !slipped.swap(true, Ordering::SeqCst)
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = write.write_all(b"250 2.1.5 Ok\r\n").await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_decision_from_a_desynchronised_session_is_withdrawn_and_made_again() {
    let r = audit(relay_out_of_turn_once().await).await;
    let relay: Vec<_> = r
        .tests
        .iter()
        .filter(|t| t.kind == TestKind::Relay)
        .collect();
    assert!(
        r.findings.iter().any(|f| f.kind == FindingKind::SmtpDesync),
        "{:#?}",
        r.findings
    );
    // The decisive acceptance of the discarded session was made again in a fresh one.
    let decided: Vec<_> = relay
        .iter()
        .filter(|t| t.verdict == Verdict::Accepted && t.argument == "<victim@ext.example>")
        .collect();
    assert!(
        decided.iter().any(|t| t.session > 1),
        "{relay:#?}\n{:#?}",
        r.transcript
    );
    assert!(
        r.findings.iter().any(|f| f.kind == FindingKind::OpenRelay),
        "{:#?}",
        r.findings
    );
    // The rest were not sent.
    assert!(
        relay
            .iter()
            .filter(|t| t.verdict == Verdict::NotRun)
            .count()
            > relay.len() / 2,
        "{relay:#?}"
    );
}
