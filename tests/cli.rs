//! The CLI's contract: exit codes, clear errors for bad input, Ctrl-C writing partial results.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relayguard_testkit::{Personality, Postfix, scanner_source_addr};
use serde_json::Value;

fn relayguard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relayguard"));
    command.env("RELAYGUARD_DATABASE", relayguard_testkit::test_database());
    command
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("relayguard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("relay-vectors.yaml"),
        "vectors:\n  - id: x\n    mail_from: '<a>'\n",
    )
    .unwrap();
    std::fs::write(dir.join("targets.txt"), "127.0.0.1\n127.0.0.0/40\n").unwrap();
    let ptr_rules = dir.join("ptr-rules");
    std::fs::create_dir_all(&ptr_rules).unwrap();
    std::fs::write(ptr_rules.join("generic-ptr.yaml"), "patterns: [\n").unwrap();
    let ptr_rules = ptr_rules.display().to_string();
    let rules = dir.display().to_string();
    let target_file = format!("@{}", dir.join("targets.txt").display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sweep", "10.0.0.0/33"],
            "\"10.0.0.0/33\" is not an address",
        ),
        (vec!["sweep", "10.0.0.9-10.0.0.1"], "start is after end"),
        (vec!["sweep", &target_file], "targets.txt:2"),
        (
            vec!["sweep", "--exclude", "mx.example.edu", "127.0.0.1"],
            "mx.example.edu",
        ),
        (
            vec!["sweep", "--rules", &rules, "127.0.0.1"],
            "relay-vectors.yaml",
        ),
        (
            vec!["sweep", "--ehlo-name", "a b", "127.0.0.1"],
            "--ehlo-name",
        ),
        (
            vec!["sweep", "--external-domain", "x\r\nDATA", "127.0.0.1"],
            "--external-domain",
        ),
        (vec!["sweep", "fd00::/64"], "more than --max-addresses"),
        (
            vec!["sweep", "--command-timeout", "0", "127.0.0.1"],
            "--command-timeout",
        ),
        (
            vec!["sweep", "--source", "127.66.0.1", "::1"],
            "other address family",
        ),
        (
            vec!["sweep", "--rules", &ptr_rules, "127.0.0.1"],
            "generic-ptr.yaml",
        ),
        (
            vec!["sweep", "--resolver", "not-an-address", "127.0.0.1"],
            "--resolver",
        ),
        (
            vec!["sweep", "--no-dns", "--dnsbl", "zen.example", "127.0.0.1"],
            "--no-dns",
        ),
        (vec!["sweep", "--confirm", "127.0.0.1"], "--confirm-sink"),
        (
            vec!["sweep", "--confirm-sink", "127.66.0.1:2525", "127.0.0.1"],
            "--confirm",
        ),
        (
            vec![
                "sweep",
                "--confirm",
                "--confirm-sink",
                "127.66.0.1:0",
                "--format",
                "jsonl",
                "127.0.0.1",
            ],
            "not jsonl",
        ),
        // Not one of this machine's addresses: refused before any traffic.
        (
            vec![
                "sweep",
                "--confirm",
                "--confirm-sink",
                "192.0.2.99:2525",
                "--no-store",
                "127.0.0.1",
            ],
            "cannot listen there",
        ),
    ];
    for (args, expected) in cases {
        let out = relayguard().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed results");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_writes_the_results_gathered_so_far() {
    let pf = Postfix::start(Personality::Closed);
    // A tarpit on port 25 that accepts and never speaks: its audit would take the whole
    // command timeout, so the sweep is still busy when interrupted.
    let tarpit = TcpListener::bind("127.66.9.9:25").expect("bind a loopback tarpit on port 25");
    let source = scanner_source_addr().to_string();
    let child = relayguard()
        .args([
            "sweep",
            "--format",
            "json",
            "--no-progress",
            "--command-timeout",
            "60",
        ])
        .args(["--source", &source, &pf.addr().to_string(), "127.66.9.9"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the Postfix audit is over (its sessions have stopped coming for a while).
    let started = Instant::now();
    let sessions = || pf.log().matches("disconnect from").count();
    let (mut seen, mut quiet_since) = (0, Instant::now());
    while seen < 3 || quiet_since.elapsed() < Duration::from_millis(1500) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "audit never finished:\n{}",
            pf.log()
        );
        std::thread::sleep(Duration::from_millis(100));
        let now = sessions();
        if now != seen {
            (seen, quiet_since) = (now, Instant::now());
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("a complete JSON document");
    assert_eq!(doc["interrupted"], true);
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "only the finished audit: {doc:#}");
    assert_eq!(hosts[0]["address"], pf.addr().to_string());
    assert!(!hosts[0]["tests"].as_array().unwrap().is_empty());
    let mut stderr = String::new();
    out.stderr.as_slice().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("interrupted"), "{stderr}");
    drop(tarpit);
}

#[test]
fn ipv6_targets_are_swept_with_ipv6_address_literals() {
    // A minimal relay-refusing server on [::1]; the vectors must use the IPv6 literal form.
    let listener = TcpListener::bind("[::1]:0").expect("IPv6 loopback");
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = stream.write_all(b"220 v6.campus.test ESMTP\r\n");
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let upper = line.to_ascii_uppercase();
                let reply: &[u8] = if upper.starts_with("EHLO") {
                    b"250 v6.campus.test\r\n"
                } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                    b"250 ok\r\n"
                } else if upper.starts_with("QUIT") {
                    let _ = stream.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"554 5.7.1 Relay access denied\r\n"
                };
                if stream.write_all(reply).is_err() {
                    break;
                }
                line.clear();
            }
        }
    });
    let out = relayguard()
        .args([
            "sweep",
            "--format",
            "json",
            "--no-progress",
            "--no-dns",
            "--sessions-per-host",
            "1",
        ])
        .args(["--ports", &port.to_string(), "::1"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let h = &doc["hosts"][0];
    assert_eq!(h["address"], "::1");
    assert_eq!(h["state"], "open");
    let tests = h["tests"].as_array().unwrap();
    let literal = tests.iter().find(|t| t["id"] == "percent-hack-ip").unwrap();
    assert_eq!(
        literal["argument"],
        "<relayguard-test%example.com@[IPv6:::1]>"
    );
    assert!(
        tests
            .iter()
            .filter(|t| t["kind"] == "relay")
            .all(|t| t["verdict"] == "refused"),
        "{tests:#?}"
    );
    assert!(
        !h["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "open-relay")
    );
    drop(server);
}

#[test]
fn discover_only_finds_the_port_says_nothing_and_records_nothing() {
    // A greeting server that records every byte a client sends it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut stream, _) = listener.accept().unwrap();
        let _ = stream.write_all(b"220 quiet.campus.test ESMTP\r\n");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        received
    });
    let db_dir = std::env::temp_dir().join(format!("relayguard-disc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&db_dir);
    std::fs::create_dir_all(&db_dir).unwrap();
    let db = db_dir.join("registry.db");
    let out = relayguard()
        .env("RELAYGUARD_DATABASE", format!("sqlite://{}", db.display()))
        .args([
            "sweep",
            "--discover-only",
            "--format",
            "json",
            "--no-progress",
        ])
        .args(["--ports", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:#?}");
    assert_eq!(hosts[0]["state"], "open");
    assert!(hosts[0]["smtp"].is_null() && hosts[0]["tests"].as_array().unwrap().is_empty());
    // Connected and closed again: not one byte of SMTP.
    let received = server.join().unwrap();
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    // A sweep that tested nothing is not recorded: it must not resolve anyone's findings.
    assert!(!db.exists(), "the registry database was created");

    // It cannot be combined with what needs an audit.
    let out = relayguard()
        .args([
            "sweep",
            "--discover-only",
            "--registry",
            "https://r.invalid",
        ])
        .args(["--token", "t", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--discover-only"));
}

#[test]
fn special_purpose_targets_are_refused_and_send_nothing() {
    // On Linux a connect to 0.0.0.0 reaches 127.0.0.1: a listener there sees any attempt.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    for (target, range) in [
        ("0.0.0.0/30", "0.0.0.0/8"),
        ("224.0.0.0/30", "224.0.0.0/4"),
        ("255.255.255.255", "240.0.0.0/4"),
    ] {
        let out = relayguard()
            .args(["sweep", "--no-dns", "--no-progress", "--no-store"])
            .args(["--ports", &port, "--connect-timeout", "1", target])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target}: {stderr}");
        assert!(
            stderr.contains(target) && stderr.contains(range) && stderr.contains("--allow-special"),
            "{target}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{target} printed results");
    }
    assert!(
        listener.accept().is_err(),
        "a refused sweep connected to the scanning host"
    );

    // A block that only overlaps a special range is listed without the special part.
    let out = relayguard()
        .args(["sweep", "--no-dns", "--list-targets", "192.0.0.0/23"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let listed = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 256, "{listed}");
    assert_eq!(lines.first(), Some(&"192.0.1.0"));
    assert_eq!(lines.last(), Some(&"192.0.1.255"));
    assert!(
        stderr.contains("192.0.0.0/24") && stderr.contains("256 addresses"),
        "{stderr}"
    );

    // --allow-special lists them as given.
    let out = relayguard()
        .args(["sweep", "--no-dns", "--list-targets", "--allow-special"])
        .arg("0.0.0.0/30")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0.0.0.0\n0.0.0.1\n0.0.0.2\n0.0.0.3\n"
    );
}

/// Reads one line (up to LF) byte by byte, so nothing past it is buffered before a STARTTLS.
fn read_line(stream: &mut impl std::io::Read) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => return Some(String::from_utf8_lossy(&line).into()),
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
}

/// A relay-refusing SMTP conversation; with `offer_tls` it offers STARTTLS and returns true once
/// it has said go ahead.
fn smtp_conversation(stream: &mut (impl std::io::Read + std::io::Write), offer_tls: bool) -> bool {
    while let Some(line) = read_line(stream) {
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") && offer_tls {
            b"250-tls.campus.test\r\n250 STARTTLS\r\n"
        } else if upper.starts_with("EHLO") {
            b"250 tls.campus.test\r\n"
        } else if upper == "STARTTLS" && offer_tls {
            return stream.write_all(b"220 2.0.0 go ahead\r\n").is_ok();
        } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
            b"250 2.0.0 Ok\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = stream.write_all(b"221 2.0.0 Bye\r\n");
            return false;
        } else {
            b"554 5.7.1 Relay access denied\r\n"
        };
        if stream
            .write_all(reply)
            .and_then(|()| stream.flush())
            .is_err()
        {
            return false;
        }
    }
    false
}

/// Greets, offers STARTTLS and goes on inside TLS with `config`.
fn starttls_session(mut tcp: std::net::TcpStream, config: std::sync::Arc<rustls::ServerConfig>) {
    use std::io::Write;
    if tcp.write_all(b"220 tls.campus.test ESMTP\r\n").is_err()
        || !smtp_conversation(&mut tcp, true)
    {
        return;
    }
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    smtp_conversation(&mut rustls::StreamOwned::new(conn, tcp), false);
}

#[test]
fn a_bad_certificate_is_a_finding_and_not_an_error_on_stderr() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    // A self-signed CA certificate used as the server's own: webpki says CaUsedAsEndEntity.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["tls.campus.test".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let config = config.clone();
            std::thread::spawn(move || starttls_session(stream, config));
        }
    });
    let out = relayguard()
        .args(["sweep", "--format", "json", "--no-progress", "--no-dns"])
        .args(["--no-store", "--command-timeout", "5"])
        .args(["--ports", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = &doc["hosts"][0];
    let tls = &host["smtp"]["tls"];
    assert_eq!(tls["established"], true, "{host:#}");
    assert!(
        tls["error"]
            .as_str()
            .unwrap_or_default()
            .contains("CaUsedAsEndEntity"),
        "{tls:#}"
    );
    assert!(
        host["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "tls-certificate-invalid"),
        "{host:#}"
    );
    // A real TLS 1.3 session (with its session tickets after the handshake) stays in step.
    let transcript = host["transcript"]["lines"].as_array().unwrap();
    assert!(
        !transcript
            .iter()
            .any(|l| l["text"].as_str().unwrap_or_default().contains("desync")),
        "{transcript:#?}"
    );
    assert!(
        !stderr.contains("CaUsedAsEndEntity")
            && !stderr.contains("rustls_platform_verifier")
            && !stderr.contains("ERROR"),
        "a certificate verdict leaked onto stderr:\n{stderr}"
    );
}
