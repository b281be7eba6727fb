//! The audit against scripted servers that misbehave in ways a real Postfix cannot be made to:
//! garbage, silence, hang-ups, 421 after a few errors (as Exim does), plaintext injected after
//! STARTTLS, endless lines. The real-MTA proof is in the workspace's tests/ (Postfix); these
//! cover the edges.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relayguard_core::FindingKind;
use relayguard_core::scan::{HostResult, TestKind, Verdict};
use relayguard_scanner::{AuditConfig, Pacer, audit};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn config(command_timeout: Duration) -> Arc<AuditConfig> {
    Arc::new(AuditConfig {
        // Every vector runs: these servers are judged vector by vector.
        all_vectors: true,
        command_timeout,
        ..relayguard_testkit::audit_config()
    })
}

async fn audit_at(addr: SocketAddr, command_timeout: Duration) -> HostResult {
    audit(
        addr.ip(),
        addr.port(),
        None,
        config(command_timeout),
        Arc::new(Pacer::new(None)),
    )
    .await
}

/// Serves every connection with `script` until the test ends.
async fn serve<F, Fut>(script: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(script(stream));
        }
    });
    addr
}

fn kinds(r: &HostResult) -> Vec<FindingKind> {
    r.findings.iter().map(|f| f.kind).collect()
}

#[tokio::test]
async fn a_non_smtp_listener_is_a_not_smtp_finding() {
    let addr = serve(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let r = audit_at(addr, Duration::from_secs(2)).await;
    assert_eq!(kinds(&r), vec![FindingKind::NotSmtp]);
    assert!(
        r.findings[0].summary.contains("SSH-2.0"),
        "{:?}",
        r.findings[0]
    );
    assert!(r.tests.is_empty());
}

#[tokio::test]
async fn a_silent_tarpit_ends_at_the_command_timeout_without_findings() {
    let addr = serve(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let started = Instant::now();
    let r = audit_at(addr, Duration::from_millis(700)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(r.findings.is_empty());
    let error = r.error.unwrap();
    assert!(error.contains("no SMTP greeting"), "{error}");
}

#[tokio::test]
async fn an_endless_line_is_cut_off_as_not_smtp() {
    let addr = serve(|mut s| async move {
        let chunk = vec![b'2'; 8192];
        for _ in 0..64 {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let r = audit_at(addr, Duration::from_secs(2)).await;
    assert_eq!(kinds(&r), vec![FindingKind::NotSmtp]);
    assert!(
        r.findings[0].summary.contains("longer than"),
        "{:?}",
        r.findings[0]
    );
}

/// A minimal scripted SMTP server: relays only for the null sender, refuses every other RCPT,
/// and, like Exim, says 421 and hangs up after three refusals in one session.
async fn strict_counting_server(stream: TcpStream, hang_up_after: usize) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write
        .write_all(b"220 mx.campus.test ESMTP Exim 4.96\r\n")
        .await;
    let mut refusals = 0;
    let mut null_sender = false;
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-mx.campus.test Hello\r\n250 PIPELINING\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            null_sender = upper == "MAIL FROM:<>";
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            if null_sender {
                b"250 Accepted\r\n"
            } else {
                refusals += 1;
                if refusals > hang_up_after {
                    let _ = write
                        .write_all(b"421 mx.campus.test: too many errors\r\n")
                        .await;
                    return;
                }
                b"550 relay not permitted\r\n"
            }
        } else if upper.starts_with("RSET") {
            b"250 Reset OK\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"500 unrecognized command\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_server_that_hangs_up_after_errors_still_gets_every_test() {
    let addr = serve(|s| strict_counting_server(s, 3)).await;
    let r = audit_at(addr, Duration::from_secs(2)).await;
    let relay: Vec<_> = r
        .tests
        .iter()
        .filter(|t| t.kind == TestKind::Relay)
        .collect();
    assert!(relay.len() >= 20);
    let inconclusive: Vec<_> = relay
        .iter()
        .filter(|t| t.verdict == Verdict::Inconclusive)
        .collect();
    assert!(
        inconclusive.is_empty(),
        "reconnects should give every test an answer: {inconclusive:?}"
    );
    let accepted: Vec<&str> = relay
        .iter()
        .filter(|t| t.verdict == Verdict::Accepted)
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(accepted, vec!["null-sender"]);
    let relay_finding = r
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::OpenRelay)
        .unwrap();
    assert_eq!(relay_finding.evidence.tests, vec!["null-sender"]);
    assert!(
        relay_finding
            .evidence
            .transcript
            .iter()
            .any(|l| l.text.starts_with("RCPT TO:<victim@ext.example>")),
        "{:?}",
        relay_finding.evidence.transcript
    );
    assert!(r.transcript.lines.iter().any(|l| l.text.starts_with("421")));
    assert!(
        r.transcript
            .lines
            .iter()
            .all(|l| !l.text.eq_ignore_ascii_case("DATA"))
    );
    assert_eq!(r.smtp.as_ref().unwrap().mta, "exim");
}

#[tokio::test]
async fn a_server_dropping_every_session_mid_test_gives_inconclusive_not_relay() {
    let addr = serve(|stream| async move {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 flaky.campus.test ESMTP\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                let _ = write.write_all(b"250 flaky.campus.test\r\n").await;
            } else if upper.starts_with("MAIL") {
                return; // hang up mid-transaction
            } else {
                let _ = write.write_all(b"502 no\r\n").await;
            }
        }
    })
    .await;
    let r = audit_at(addr, Duration::from_secs(2)).await;
    assert!(!kinds(&r).contains(&FindingKind::OpenRelay));
    let relay: Vec<_> = r
        .tests
        .iter()
        .filter(|t| t.kind == TestKind::Relay)
        .collect();
    assert!(!relay.is_empty());
    assert!(
        relay.iter().all(|t| t.verdict == Verdict::Inconclusive),
        "{relay:?}"
    );
    assert!(
        r.transcript
            .lines
            .iter()
            .any(|l| l.text == "server closed the connection")
    );
}

#[tokio::test]
async fn plaintext_after_the_starttls_go_ahead_is_a_finding() {
    let addr = serve(|stream| async move {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 inject.campus.test ESMTP\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-inject.campus.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
            } else if upper == "STARTTLS" {
                // The go-ahead and a forged reply in one write: a client that does not discard
                // it would read "250 injected" as the first reply inside TLS.
                b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
            } else if upper.starts_with("QUIT") {
                b"221 bye\r\n"
            } else {
                b"554 no\r\n"
            };
            if write.write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let r = audit_at(addr, Duration::from_secs(2)).await;
    let k = kinds(&r);
    assert!(k.contains(&FindingKind::StarttlsInjection), "{k:?}");
    // The server cannot speak TLS: the handshake fails, the rest of the audit goes on in plain.
    assert!(k.contains(&FindingKind::TlsHandshakeFailed), "{k:?}");
    assert!(k.contains(&FindingKind::AuthBeforeTls), "{k:?}");
    assert!(!k.contains(&FindingKind::NoStarttls), "{k:?}");
    assert!(
        r.tests
            .iter()
            .any(|t| t.kind == TestKind::Relay && t.verdict == Verdict::Refused)
    );
}

#[tokio::test]
async fn helo_fallback_for_servers_without_ehlo() {
    let addr = serve(|stream| async move {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 old.campus.test SMTP ready\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"500 Command unrecognized\r\n"
            } else if upper.starts_with("HELO") {
                b"250 old.campus.test\r\n"
            } else if ["MAIL", "RCPT", "RSET"]
                .iter()
                .any(|c| upper.starts_with(c))
            {
                b"250 ok\r\n"
            } else {
                b"502 not implemented\r\n"
            };
            if write.write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let r = audit_at(addr, Duration::from_secs(2)).await;
    let smtp = r.smtp.as_ref().unwrap();
    assert!(smtp.helo_fallback);
    // It accepts everything, so it is an open relay (rapid7 PR#18377: EHLO-only clients miss it).
    assert!(kinds(&r).contains(&FindingKind::OpenRelay));
    assert!(kinds(&r).contains(&FindingKind::NoStarttls));
    // Accepting any local recipient too, so the local-looking vectors are not counted as relay.
    let percent = r.tests.iter().find(|t| t.id == "percent-hack-ip").unwrap();
    assert_eq!(percent.verdict, Verdict::Inconclusive);
    let direct = r.tests.iter().find(|t| t.id == "external-sender").unwrap();
    assert_eq!(direct.verdict, Verdict::Accepted);
    let _: IpAddr = r.address;
}

#[tokio::test]
async fn a_rate_limiting_server_is_not_hammered_and_the_verdict_says_incomplete() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
    let addr = serve(|stream| async move {
        let n = CONNECTIONS.fetch_add(1, Ordering::SeqCst);
        let (read, mut write) = stream.into_split();
        if n > 0 {
            // Sendmail's ratecontrol: every connection after the first is refused.
            let _ = write
                .write_all(b"421 4.3.2 Connection rate limit exceeded.\r\n")
                .await;
            return;
        }
        let mut lines = BufReader::new(read).lines();
        let _ = write
            .write_all(b"220 busy.campus.test ESMTP Sendmail 8.17.1/8.17.1\r\n")
            .await;
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250 busy.campus.test\r\n"
            } else if upper.starts_with("QUIT") {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else if upper.starts_with("VRFY") || upper.starts_with("EXPN") {
                b"502 no\r\n"
            } else {
                b"250 ok\r\n"
            };
            if write.write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let r = audit_at(addr, Duration::from_secs(2)).await;
    // The first refusal stops new sessions: at most one attempt per parallel relay session.
    let connections = CONNECTIONS.load(Ordering::SeqCst);
    assert!(connections <= 1 + 3, "{connections} connections");
    // The relay tests dealt to the first session got their answers (this server accepts them
    // there, so it is an open relay); those dealt to the refused sessions did not run, and
    // none of them is read as a verdict.
    let (answered, refused): (Vec<_>, Vec<_>) = r
        .tests
        .iter()
        .filter(|t| t.kind == TestKind::Relay)
        .partition(|t| t.session == 1);
    assert!(!answered.is_empty() && !refused.is_empty(), "{:?}", r.tests);
    assert!(
        answered.iter().all(|t| t.verdict == Verdict::Accepted),
        "{answered:?}"
    );
    assert!(
        refused.iter().all(|t| t.verdict == Verdict::Inconclusive
            && t.note.as_deref().is_some_and(|n| n.contains("421 4.3.2"))),
        "{refused:?}"
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("relay verdict is incomplete") && n.contains("421 4.3.2")),
        "{:?}",
        r.notes
    );
}

#[tokio::test]
async fn a_server_that_holds_replies_back_after_errors_gets_fresh_sessions() {
    use std::sync::Mutex;
    // Postfix with smtpd_soft_error_limit = 3 (a common hardening): after the third error in a
    // session every reply comes a second late. Here: how many replies each session held back.
    static HELD_BACK: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let addr = serve(|stream| async move {
        let session = {
            let mut held = HELD_BACK.lock().unwrap();
            held.push(0);
            held.len() - 1
        };
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write
            .write_all(b"220 strict.campus.test ESMTP Postfix\r\n")
            .await;
        let mut errors = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250 strict.campus.test\r\n"
            } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                b"250 2.0.0 Ok\r\n"
            } else if upper.starts_with("QUIT") {
                b"221 2.0.0 Bye\r\n"
            } else {
                errors += 1;
                b"554 5.7.1 Relay access denied\r\n"
            };
            if errors > 3 || (errors == 3 && !reply.starts_with(b"554")) {
                HELD_BACK.lock().unwrap()[session] += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if write.write_all(reply).await.is_err() || upper.starts_with("QUIT") {
                return;
            }
        }
    })
    .await;
    let r = audit_at(addr, Duration::from_secs(5)).await;
    // Every test still got its answer...
    assert!(
        r.tests.iter().all(|t| t.verdict == Verdict::Refused),
        "{:#?}",
        r.tests
    );
    // ...and no session went on once the server had started holding replies back: at most
    // one test's MAIL, RCPT and RSET (which show it) and the QUIT. Without fresh sessions,
    // a session of 8 tests has 15 replies held back.
    let held = HELD_BACK.lock().unwrap().clone();
    assert!(
        held.iter().all(|&n| n <= 4),
        "held back per session: {held:?}"
    );
    assert!(
        held.iter().any(|&n| n > 0),
        "the server never held back: {held:?}"
    );
}
