//! A corpus of hostile and broken SMTP servers, scripted on loopback, each a small async fn that
//! serves one connection. Every audit of them must hold the promises of docs/reliability.md:
//! no panic, done within the host deadline plus a second, a bounded transcript (the memory an
//! audit keeps), a handful of connections at most, and never an `open-relay` or
//! `backscatter-source` finding, since none of these servers accepts a foreign recipient.
//!
//! hostile_servers.rs checks the verdicts on a few of these in detail; this file checks the
//! promises on all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use relayguard_core::FindingKind;
use relayguard_core::scan::{HostResult, TestKind, Verdict};
use relayguard_scanner::{AuditConfig, Pacer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
const HOST_DEADLINE: Duration = Duration::from_secs(6);
/// What "a handful of connections" means: the first session, the relay sessions the vectors are
/// dealt to, and a retry for some of them.
const MAX_CONNECTIONS: usize = 12;
/// The transcript is what an audit keeps of a server's bytes: it must stay small whatever the
/// server sends.
const MAX_TRANSCRIPT_BYTES: usize = 256 * 1024;

fn config() -> Arc<AuditConfig> {
    Arc::new(AuditConfig {
        command_timeout: COMMAND_TIMEOUT,
        host_deadline: HOST_DEADLINE,
        ..relayguard_testkit::audit_config()
    })
}

/// The one call into the audit: if its signature changes, only this changes.
async fn run_audit(addr: SocketAddr) -> HostResult {
    relayguard_scanner::audit::audit(
        addr.ip(),
        addr.port(),
        None,
        config(),
        Arc::new(Pacer::new(None)),
    )
    .await
}

/// A scripted server: its address and how many connections it accepted.
struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

/// Serves every connection with `script`, which is told the connection's number (0, 1, …).
async fn serve<F, Fut>(script: F) -> Server
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(stream, n));
        }
    });
    Server { addr, accepted }
}

/// Audits the server and checks every promise; returns the result for case-specific checks.
async fn audit_checked(server: Server, max_connections: usize) -> HostResult {
    let started = Instant::now();
    let result = tokio::time::timeout(HOST_DEADLINE * 3, run_audit(server.addr))
        .await
        .expect("the audit hung far past its host deadline");
    let took = started.elapsed();
    assert!(
        took <= HOST_DEADLINE + Duration::from_secs(1),
        "took {took:?}, host deadline {HOST_DEADLINE:?}"
    );
    let connections = server.accepted.load(Ordering::SeqCst);
    assert!(
        connections <= max_connections,
        "{connections} connections to one host"
    );
    let kinds: Vec<FindingKind> = result.findings.iter().map(|f| f.kind).collect();
    assert!(
        !kinds.contains(&FindingKind::OpenRelay)
            && !kinds.contains(&FindingKind::BackscatterSource),
        "false relay finding: {kinds:?}\n{:#?}",
        result.tests
    );
    let kept: usize = result.transcript.lines.iter().map(|l| l.text.len()).sum();
    assert!(kept <= MAX_TRANSCRIPT_BYTES, "transcript of {kept} bytes");
    result
}

/// Reads one line from the client (bytes up to LF, lossily decoded), `None` at the end.
async fn next_line(read: &mut BufReader<OwnedReadHalf>) -> Option<String> {
    let mut line = Vec::new();
    match read.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(
            String::from_utf8_lossy(&line)
                .trim_end()
                .to_ascii_uppercase(),
        ),
    }
}

/// What a relay-refusing MTA answers to `cmd`: 250 to EHLO, MAIL and RSET, 550 to RCPT (and to
/// anything else), 221 to QUIT.
fn refusing(cmd: &str) -> &'static [u8] {
    if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
        b"250-mx.campus.test\r\n250 PIPELINING\r\n"
    } else if cmd.starts_with("MAIL") || cmd.starts_with("RSET") {
        b"250 2.0.0 Ok\r\n"
    } else if cmd.starts_with("QUIT") {
        b"221 2.0.0 Bye\r\n"
    } else {
        b"550 5.7.1 Relay access denied\r\n"
    }
}

/// A conversation: greets with `greeting`, answers each command with `answer` until it gives
/// `None` (then hangs up); QUIT ends it after the answer.
async fn converse(
    stream: TcpStream,
    greeting: &[u8],
    answer: impl Fn(&str) -> Option<Vec<u8>>,
) -> Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf)> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(greeting).await.ok()?;
    while let Some(cmd) = next_line(&mut read).await {
        let reply = answer(&cmd)?;
        write.write_all(&reply).await.ok()?;
        if cmd.starts_with("QUIT") {
            return None;
        }
    }
    None
}

const GREETING: &[u8] = b"220 mx.campus.test ESMTP\r\n";

// ---- the corpus ----

async fn endless_multiline_greeting(mut s: TcpStream, _: usize) {
    for i in 0u64.. {
        let line = format!("220-line {i} of a greeting that never ends\r\n");
        if s.write_all(line.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn endless_multiline_rcpt_reply(s: TcpStream, _: usize) {
    let (mut read, mut write) = s.into_split();
    let _ = write.write_all(GREETING).await;
    let mut read = BufReader::new(&mut read);
    let mut line = Vec::new();
    while read.read_until(b'\n', &mut line).await.unwrap_or(0) > 0 {
        let cmd = String::from_utf8_lossy(&line).to_ascii_uppercase();
        line.clear();
        if cmd.starts_with("RCPT") {
            loop {
                if write.write_all(b"250-still going\r\n").await.is_err() {
                    return;
                }
            }
        }
        if write.write_all(refusing(&cmd)).await.is_err() {
            return;
        }
    }
}

async fn megabyte_line_without_crlf(mut s: TcpStream, _: usize) {
    let mut line = b"220 ".to_vec();
    line.resize(1 << 20, b'x');
    let _ = s.write_all(&line).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
}

async fn slowloris_banner(mut s: TcpStream, _: usize) {
    for byte in GREETING {
        if s.write_all(&[*byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn rst_after_half_a_reply(s: TcpStream, _: usize) {
    let (mut read, mut write) = s.into_split();
    let _ = write.write_all(GREETING).await;
    let mut buf = [0u8; 512];
    let _ = read.read(&mut buf).await; // EHLO
    let _ = write.write_all(b"250-mx.campus.test\r\n250-PIPE").await;
    let s = read.reunite(write).unwrap();
    // Linger 0: close with a RST instead of a FIN.
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

async fn nul_and_invalid_utf8(s: TcpStream, _: usize) {
    converse(
        s,
        b"220 mx\x00.campus\xff\xfe.test ESMTP \xc3\x28\r\n",
        |cmd| {
            Some(if cmd.starts_with("RCPT") {
                b"550 \x00\xff relay \x1b[2J denied\r\n".to_vec()
            } else if cmd.starts_with("EHLO") {
                b"250-mx\x00\r\n250 \xff\xfe\r\n".to_vec()
            } else {
                refusing(cmd).to_vec()
            })
        },
    )
    .await;
}

/// A server that answers RCPT with `reply` and is otherwise a refusing MTA.
async fn rcpt_answered_with(s: TcpStream, reply: &'static [u8]) {
    converse(s, GREETING, |cmd| {
        Some(if cmd.starts_with("RCPT") {
            reply.to_vec()
        } else {
            refusing(cmd).to_vec()
        })
    })
    .await;
}

async fn code_2x0(s: TcpStream, _: usize) {
    rcpt_answered_with(s, b"2x0 2.1.5 Ok\r\n").await;
}

async fn code_999(s: TcpStream, _: usize) {
    rcpt_answered_with(s, b"999 2.1.5 Ok\r\n").await;
}

async fn code_2500(s: TcpStream, _: usize) {
    rcpt_answered_with(s, b"2500 2.1.5 Ok\r\n").await;
}

async fn code_minus_250(s: TcpStream, _: usize) {
    rcpt_answered_with(s, b"-250 2.1.5 Ok\r\n").await;
}

/// A bare `250` with no line ending, then silence: an incomplete reply is no acceptance.
async fn bare_250_without_line_ending(s: TcpStream, _: usize) {
    rcpt_answered_with(s, b"250").await;
}

async fn bare_250_greeting(s: TcpStream, _: usize) {
    converse(s, b"250\r\n", |cmd| Some(refusing(cmd).to_vec())).await;
}

async fn multiline_codes_disagree(s: TcpStream, _: usize) {
    rcpt_answered_with(s, b"550-5.7.1 relay denied\r\n250 2.1.5 Ok\r\n").await;
}

/// `bytes` cut into segments of 1, 2 and 3 bytes in turn, starting at `1 + first % 3`.
fn segments(bytes: &[u8], first: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut size = first % 3;
    while !rest.is_empty() {
        size = size % 3 + 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// A refusing MTA whose every reply arrives in segments of 1 to 3 bytes.
async fn replies_in_tiny_segments(s: TcpStream, n: usize) {
    let (read, mut write) = s.into_split();
    let mut read = BufReader::new(read);
    let mut cmd = String::new();
    loop {
        let reply = if cmd.is_empty() {
            GREETING
        } else {
            refusing(&cmd)
        };
        for segment in segments(reply, n) {
            if write.write_all(segment).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        match next_line(&mut read).await {
            Some(next) if !cmd.starts_with("QUIT") => cmd = next,
            _ => return,
        }
    }
}

/// Two greetings at once, and an unsolicited 250 after each refused RCPT: a client one reply
/// behind reads the 250 meant for MAIL as accepting the recipient.
async fn double_greeting_and_unsolicited_250(s: TcpStream, _: usize) {
    converse(
        s,
        b"220 mx.campus.test ESMTP\r\n220 mx.campus.test ESMTP\r\n",
        |cmd| {
            Some(if cmd.starts_with("RCPT") {
                b"550 5.7.1 Relay access denied\r\n250 2.1.5 Ok\r\n".to_vec()
            } else {
                refusing(cmd).to_vec()
            })
        },
    )
    .await;
}

/// One greeting, but an unsolicited 250 a moment after each refused RCPT.
async fn unsolicited_250_after_refusals(s: TcpStream, _: usize) {
    let (read, mut write) = s.into_split();
    let mut read = BufReader::new(read);
    let _ = write.write_all(GREETING).await;
    while let Some(cmd) = next_line(&mut read).await {
        if write.write_all(refusing(&cmd)).await.is_err() || cmd.starts_with("QUIT") {
            return;
        }
        if cmd.starts_with("RCPT") {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = write.write_all(b"250 2.1.5 Ok\r\n").await;
        }
    }
}

fn offering_starttls(cmd: &str) -> &'static [u8] {
    if cmd.starts_with("EHLO") {
        b"250-mx.campus.test\r\n250 STARTTLS\r\n"
    } else {
        refusing(cmd)
    }
}

/// Says go ahead to STARTTLS and goes on in plaintext, answering the ClientHello as a command.
async fn starttls_answered_in_plaintext(s: TcpStream, _: usize) {
    converse(s, GREETING, |cmd| {
        Some(if cmd == "STARTTLS" {
            b"220 2.0.0 Ready to start TLS\r\n".to_vec()
        } else if cmd.starts_with("EHLO") || cmd.starts_with("MAIL") || cmd.starts_with("RSET") {
            offering_starttls(cmd).to_vec()
        } else if cmd.starts_with("RCPT") || cmd.starts_with("QUIT") {
            refusing(cmd).to_vec()
        } else {
            b"500 5.5.2 Error: bad syntax\r\n".to_vec()
        })
    })
    .await;
}

async fn starttls_with_injected_bytes(s: TcpStream, _: usize) {
    converse(s, GREETING, |cmd| {
        Some(if cmd == "STARTTLS" {
            b"220 2.0.0 Ready\r\n250 2.1.5 injected\r\n".to_vec()
        } else {
            offering_starttls(cmd).to_vec()
        })
    })
    .await;
}

/// Says go ahead to STARTTLS, reads the ClientHello and never answers it.
async fn stalled_tls_handshake(s: TcpStream, _: usize) {
    let (mut read, mut write) = s.into_split();
    let _ = write.write_all(GREETING).await;
    let mut lines = BufReader::new(&mut read);
    let mut line = Vec::new();
    while lines.read_until(b'\n', &mut line).await.unwrap_or(0) > 0 {
        let cmd = String::from_utf8_lossy(&line)
            .trim_end()
            .to_ascii_uppercase();
        line.clear();
        if cmd == "STARTTLS" {
            let _ = write.write_all(b"220 2.0.0 Ready to start TLS\r\n").await;
            // Swallow the ClientHello and whatever follows, and say nothing.
            let mut sink = [0u8; 4096];
            while lines.read(&mut sink).await.unwrap_or(0) > 0 {}
            return;
        }
        if write.write_all(offering_starttls(&cmd)).await.is_err() || cmd.starts_with("QUIT") {
            return;
        }
    }
}

async fn hundred_thousand_line_ehlo(s: TcpStream, _: usize) {
    let (read, mut write) = s.into_split();
    let mut read = BufReader::new(read);
    let _ = write.write_all(GREETING).await;
    while let Some(cmd) = next_line(&mut read).await {
        if cmd.starts_with("EHLO") {
            let mut reply = String::new();
            for i in 0..100_000 {
                reply.push_str(&format!("250-EXTENSION{i}\r\n"));
            }
            reply.push_str("250 LAST\r\n");
            let _ = write.write_all(reply.as_bytes()).await;
        } else if write.write_all(refusing(&cmd)).await.is_err() {
            return;
        }
    }
}

async fn http_server(s: TcpStream, _: usize) {
    let (read, mut write) = s.into_split();
    let mut read = BufReader::new(read);
    if next_line(&mut read).await.is_some() {
        let _ = write
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
    }
}

/// Every other connection is refused with 421 at once; the others say 421 after EHLO.
async fn flapping_421(s: TcpStream, n: usize) {
    if n.is_multiple_of(2) {
        let mut s = s;
        let _ = s
            .write_all(b"421 4.3.2 Service not available, try later\r\n")
            .await;
        return;
    }
    converse(s, GREETING, |cmd| {
        Some(if cmd.starts_with("EHLO") {
            b"250 mx.campus.test\r\n".to_vec()
        } else {
            b"421 4.3.2 Too busy, closing\r\n".to_vec()
        })
    })
    .await;
}

/// A well-behaved refusing MTA: the control case, which must come out in step and refused.
async fn well_behaved(s: TcpStream, _: usize) {
    converse(s, GREETING, |cmd| Some(refusing(cmd).to_vec())).await;
}

// ---- the checks ----

macro_rules! corpus {
    ($max:expr; $($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            audit_checked(serve(crate::$name).await, $max).await;
        }
    )*};
}

/// Every promise, a handful of connections included.
mod hostile {
    use super::*;

    corpus!(MAX_CONNECTIONS;
        endless_multiline_greeting,
        megabyte_line_without_crlf,
        slowloris_banner,
        rst_after_half_a_reply,
        nul_and_invalid_utf8,
        bare_250_greeting,
        double_greeting_and_unsolicited_250,
        unsolicited_250_after_refusals,
        starttls_answered_in_plaintext,
        starttls_with_injected_bytes,
        stalled_tls_handshake,
        hundred_thousand_line_ehlo,
        http_server,
        flapping_421,
        // Servers that break protocol (or never finish) on every RCPT: after a few broken
        // sessions the host gets no new one, rather than a connection per test.
        endless_multiline_rcpt_reply,
        code_2x0,
        code_999,
        code_2500,
        code_minus_250,
        bare_250_without_line_ending,
        multiline_codes_disagree,
    );
}

#[tokio::test]
async fn replies_in_tiny_segments_are_reassembled_and_refused() {
    let r = audit_checked(serve(replies_in_tiny_segments).await, MAX_CONNECTIONS).await;
    let relay: Vec<_> = r
        .tests
        .iter()
        .filter(|t| t.kind == TestKind::Relay)
        .collect();
    assert!(!relay.is_empty(), "{r:#?}");
    assert!(
        relay.iter().all(|t| t.verdict == Verdict::Refused),
        "{relay:#?}"
    );
}

#[tokio::test]
async fn a_well_behaved_server_is_in_step_and_refused() {
    let r = audit_checked(serve(well_behaved).await, MAX_CONNECTIONS).await;
    assert!(r.error.is_none(), "{:?}", r.error);
    assert!(
        !r.transcript.lines.iter().any(|l| l.text.contains("desync")),
        "{:#?}",
        r.transcript
    );
    assert!(
        !r.findings.iter().any(|f| f.kind == FindingKind::SmtpDesync),
        "{:#?}",
        r.findings
    );
    assert!(
        r.tests
            .iter()
            .filter(|t| t.kind == TestKind::Relay)
            .all(|t| t.verdict == Verdict::Refused)
    );
}

/// Out of turn on its first connection only; in step afterwards.
async fn out_of_turn_on_first_connection(s: TcpStream, n: usize) {
    if n == 0 {
        unsolicited_250_after_refusals(s, n).await;
    } else {
        well_behaved(s, n).await;
    }
}

#[tokio::test]
async fn a_desynchronised_session_is_discarded_and_reported() {
    let r = audit_checked(serve(unsolicited_250_after_refusals).await, MAX_CONNECTIONS).await;
    let desync: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::SmtpDesync)
        .collect();
    assert_eq!(desync.len(), 1, "{:#?}", r.findings);
    assert!(
        desync[0]
            .evidence
            .transcript
            .iter()
            .any(|l| l.text.contains("250 2.1.5 Ok")),
        "{:#?}",
        desync[0]
    );
    assert!(
        r.tests.iter().all(|t| t.verdict != Verdict::Accepted),
        "{:#?}",
        r.tests
    );
    assert!(
        r.notes.iter().any(|n| n.contains("no reply was due")),
        "{:?}",
        r.notes
    );
}

#[tokio::test]
async fn tests_of_a_desynchronised_session_are_judged_again_in_a_fresh_one() {
    let r = audit_checked(
        serve(out_of_turn_on_first_connection).await,
        MAX_CONNECTIONS,
    )
    .await;
    assert!(
        r.findings.iter().any(|f| f.kind == FindingKind::SmtpDesync),
        "{:#?}",
        r.findings
    );
    let relay: Vec<_> = r
        .tests
        .iter()
        .filter(|t| t.kind == TestKind::Relay)
        .collect();
    assert!(!relay.is_empty());
    assert!(
        relay
            .iter()
            .all(|t| t.verdict == Verdict::Refused && t.session > 1),
        "{relay:#?}"
    );
}

#[tokio::test]
async fn a_server_broken_on_every_rcpt_costs_a_handful_of_sessions_and_says_so() {
    let r = audit_checked(serve(code_2x0).await, MAX_CONNECTIONS).await;
    assert!(
        r.notes.iter().any(|n| n.contains("sessions broke off")),
        "{:?}",
        r.notes
    );
    assert!(
        r.tests.iter().all(|t| t.verdict != Verdict::Accepted),
        "{:#?}",
        r.tests
    );
}
