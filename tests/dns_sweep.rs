//! End-to-end: `relayguard sweep --resolver … --dnsbl …` against a real authoritative DNS server
//! (nsd, serving the scanner's test zones) and real listeners on loopback.

#[path = "../scanner/tests/dns/server.rs"]
mod dns_server;
mod support;

use std::process::Command;

use serde_json::Value;
use support::{Personality, Postfix, scanner_source_addr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A minimal closed SMTP server on 127.0.0.11:25, the address the test blocklist lists.
async fn listed_host() -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.11:25")
        .await
        .expect("bind 127.0.0.11:25 (tests run as root)");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 lab11.campus.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-lab11.campus.test\r\n250 STARTTLS\r\n"
                    } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                        b"250 ok\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"550 no\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn host<'a>(doc: &'a Value, addr: &str) -> &'a Value {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["address"] == addr)
        .unwrap_or_else(|| panic!("{addr} missing from {doc:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn blocklisted_hosts_are_found_through_the_given_resolver() {
    let nsd = dns_server::Nsd::start().await;
    let server = listed_host().await;
    let postfix = Postfix::start(Personality::ClosedStrict);
    let resolver = nsd.addr.to_string();
    let source = scanner_source_addr().to_string();
    let pf = postfix.addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_relayguard"))
            .args([
                "sweep",
                "--format",
                "json",
                "--no-progress",
                "--source",
                &source,
            ])
            .args([
                "--resolver",
                &resolver,
                "--dnsbl",
                "dnsbl.test",
                "--dnsbl",
                "servfail.test",
            ])
            .args(["127.0.0.11", &pf])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            nsd.logs()
        )
    });

    let listed = host(&doc, "127.0.0.11");
    let finding = listed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "dnsbl-listed")
        .unwrap_or_else(|| panic!("no dnsbl-listed finding: {listed:#}"));
    let summary = finding["summary"].as_str().unwrap();
    assert!(
        summary.contains("dnsbl.test") && summary.contains("127.0.0.4"),
        "{summary}"
    );
    assert_eq!(finding["severity"], "high");
    assert!(
        !finding["evidence"]["transcript"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let clean = host(&doc, &postfix.addr().to_string());
    assert!(
        clean["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "dnsbl-listed"),
        "{clean:#}"
    );
    for h in [listed, clean] {
        let notes: Vec<&str> = h["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        // A blocklist that cannot answer is a note, never a listing.
        assert!(
            notes.iter().any(|n| n.contains("servfail.test")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("reverse DNS not checked")),
            "{notes:?}"
        );
    }
    server.abort();
}
