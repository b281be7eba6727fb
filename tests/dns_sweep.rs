//! End-to-end: `relayguard sweep --resolver … --dnsbl …` against a real authoritative DNS server
//! (nsd, serving the scanner's test zones) and real listeners on loopback.

use std::process::Command;

use relayguard_testkit::report::host;
use relayguard_testkit::{Personality, Postfix, scanner_source_addr};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Both tests use 127.0.0.11:25 (one listens there, the other needs it silent).
static LOOPBACK_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

#[tokio::test(flavor = "multi_thread")]
async fn blocklisted_hosts_are_found_through_the_given_resolver() {
    let _ports = LOOPBACK_PORTS.lock().await;
    let nsd = relayguard_testkit::nsd::Nsd::start().await;
    let server = listed_host().await;
    let postfix = Postfix::start(Personality::ClosedStrict);
    let resolver = nsd.addr.to_string();
    let source = scanner_source_addr().to_string();
    let pf = postfix.addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_relayguard"))
            .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
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

    let clean = host(&doc, postfix.addr());
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
    // Wait for the listener to be dropped before releasing the port to the other test.
    server.abort();
    let _ = server.await;
}

/// Accepts SMTP connections on `addr` with a greeting, until aborted.
async fn greeter(addr: &str) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind a loopback port 25");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"220 mx.campus.test ESMTP\r\n").await;
        }
    })
}

fn relayguard_blocking(args: Vec<String>) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
        .arg("sweep")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn campus_zones_give_targets_and_mx_findings() {
    let _ports = LOOPBACK_PORTS.lock().await;
    let nsd = relayguard_testkit::nsd::Nsd::start().await;
    let resolver = nsd.addr.to_string();
    let state =
        std::env::temp_dir().join(format!("relayguard-serials-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&state);

    // Targets from DNS: MX and apex records plus a zone transfer, listed without sending a packet
    // to any target. The zone's record-only hosts (TEST-NET-1, ULA, ::1) are excluded.
    let list = |resolver: String, state: String| {
        relayguard_blocking(
            [
                "--list-targets",
                "--from-dns",
                "campus.test",
                "--resolver",
                &resolver,
                "--axfr-server",
                &resolver,
                "--dns-state",
                &state,
                "--exclude",
                "192.0.2.0/24",
                "--exclude",
                "fd00::/8",
                "--exclude",
                "::1",
            ]
            .map(String::from)
            .to_vec(),
        )
    };
    let state_arg = state.display().to_string();
    for run in 0..2 {
        let (r, s) = (resolver.clone(), state_arg.clone());
        let out = tokio::task::spawn_blocking(move || list(r, s))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for expected in [
            "127.0.0.10\tmx.campus.test",
            "127.0.0.11\tmx2.campus.test",
            "127.0.0.12\tmx6.campus.test",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "run {run}: {expected:?} missing from\n{text}"
            );
        }
        assert!(
            !text.contains("192.0.2.") && !text.contains("fd00") && !text.contains("::1"),
            "{text}"
        );
    }
    let remembered = std::fs::read_to_string(&state).expect("zone serials were saved");
    assert!(remembered.contains("2026112201"), "{remembered}");
    let _ = std::fs::remove_file(&state);

    // MX consistency: mx answers, mx2 does not, mx6 answers over IPv4 but not on its AAAA (::1).
    // Registered: mx (consistent with DNS) and mail.campus.test at an address DNS disagrees with.
    let zone_dir = std::env::temp_dir().join(format!("relayguard-zone-{}", std::process::id()));
    std::fs::create_dir_all(&zone_dir).unwrap();
    let database = format!("sqlite://{}/registry.db", zone_dir.display());
    for (addr, name) in [
        ("127.0.0.10", "mx.campus.test"),
        ("192.0.2.99", "mail.campus.test"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
            .args([
                "--database",
                &database,
                "hosts",
                "add",
                addr,
                "--hostname",
                name,
            ])
            .args(["--role", "mail-direct", "--admin-name", "Mail Admin"])
            .args(["--admin-email", "mail@campus.test"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mx = greeter("127.0.0.10:25").await;
    let mx6 = greeter("127.0.0.12:25").await;
    let args = [
        "--database",
        &database,
        "sweep",
        "--zone",
        "campus.test",
        "--resolver",
        &resolver,
        "--format",
        "json",
        "--no-progress",
    ]
    .map(String::from)
    .to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_relayguard"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let zone = &doc["zones"][0];
    assert_eq!(zone["zone"], "campus.test");
    let found: Vec<(String, String)> = zone["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |kind: &str, text: &str| found.iter().any(|(k, s)| k == kind && s.contains(text));
    assert!(has("mx-not-answering", "mx2.campus.test"), "{found:#?}");
    assert!(has("mx-ipv6-unreachable", "mx6.campus.test"), "{found:#?}");
    assert!(has("mx-unregistered", "mx2.campus.test"), "{found:#?}");
    assert!(has("mx-unregistered", "mx6.campus.test"), "{found:#?}");
    assert!(
        !has("mx-unregistered", "MX mx.campus.test"),
        "registered: {found:#?}"
    );
    assert!(
        has("registration-dns-mismatch", "mail.campus.test"),
        "{found:#?}"
    );
    assert!(
        !has("registration-dns-mismatch", "mx.campus.test"),
        "consistent: {found:#?}"
    );
    assert_eq!(found.len(), 5, "{found:#?}");
    for listener in [mx, mx6] {
        listener.abort();
        let _ = listener.await;
    }
    let _ = std::fs::remove_dir_all(&zone_dir);
}
