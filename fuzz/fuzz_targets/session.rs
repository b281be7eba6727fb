//! A connection fed with arbitrary server bytes over an in-memory stream, driven through the
//! greeting, EHLO, MAIL FROM and RCPT TO as the audit drives it. The property: the RCPT counts as
//! accepted only if a complete, in-turn 2xx answered it, which means every turn of the server
//! was exactly one complete reply (220, 2xx, 2xx, 2xx), with nothing out of turn.
//!
//! Input: the server's turns, separated by 0xFF bytes. Turn 0 is sent at once (the greeting);
//! turn n is sent whole when the n-th command line has arrived. Sending a turn whole (the stream
//! holds more than any input) is what a real server's single write looks like; bytes that come
//! later than the next command are caught one command later, which the runner handles.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use relayguard_scanner::smtp::reply::{Limits, parse_reply};
use relayguard_scanner::smtp::{Connection, Timing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::time::Instant;

/// One runtime for every input: time is paused, so a silent server costs no real time (timeouts
/// fire as soon as nothing else can happen).
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

/// The client side: returns whether RCPT was accepted, in turn.
async fn client(conn: &mut Connection) -> Option<bool> {
    let greeting = conn.read_reply().await.ok()?;
    if greeting.code != 220 {
        return None;
    }
    for command in ["EHLO fuzz.test", "MAIL FROM:<probe@fuzz.test>"] {
        if !conn.command(command).await.ok()?.is_positive() {
            return None;
        }
    }
    let rcpt = conn.command("RCPT TO:<victim@ext.example>").await.ok()?;
    // The audit's next command (RSET) checks that nothing came out of turn; a verdict counts
    // only if that check passes.
    conn.check_in_turn().await.ok()?;
    Some(rcpt.is_positive())
}

/// Whether `turn` is exactly one complete reply, and its code.
fn one_reply(turn: &[u8]) -> Option<u16> {
    match parse_reply(turn, Limits::default()) {
        Ok(Some((reply, used))) if used == turn.len() => Some(reply.code),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 1 << 16 {
        return;
    }
    let turns: Vec<Vec<u8>> = data.split(|&b| b == 0xFF).map(<[u8]>::to_vec).collect();
    let accepted = runtime().block_on(async {
        let (near, far) = tokio::io::duplex(1 << 17);
        let script = turns.clone();
        let server = tokio::spawn(async move {
            let (mut read, mut write) = tokio::io::split(far);
            write.write_all(&script[0]).await.ok()?;
            let mut lines = 0;
            let mut buf = [0u8; 512];
            loop {
                let n = read.read(&mut buf).await.ok().filter(|&n| n > 0)?;
                for _ in buf[..n].iter().filter(|&&b| b == b'\n') {
                    lines += 1;
                    if let Some(turn) = script.get(lines) {
                        write.write_all(turn).await.ok()?;
                    }
                }
            }
            #[allow(unreachable_code)]
            Some(())
        });
        let now = Instant::now();
        let timing = Timing {
            started: now,
            command_timeout: Duration::from_secs(5),
            deadline: now + Duration::from_secs(30),
        };
        let mut conn = Connection::over(near, 1, timing);
        let accepted = client(&mut conn).await;
        drop(conn);
        server.abort();
        accepted
    });
    if accepted == Some(true) {
        let codes: Vec<Option<u16>> = turns.iter().take(4).map(|t| one_reply(t)).collect();
        assert!(
            codes.len() == 4
                && codes[0] == Some(220)
                && codes[1..].iter().all(|c| c.is_some_and(|c| c / 100 == 2)),
            "RCPT accepted, but the server's turns were {codes:?}: {turns:?}"
        );
    }
});
