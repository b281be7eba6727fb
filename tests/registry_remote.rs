//! End-to-end: `relayguard serve` over TLS on loopback, and `relayguard sweep --registry URL
//! --token T --registry-ca CA` posting a sweep of a real Postfix to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use relayguard_testkit::{Personality, Postfix, scanner_source_addr};
use serde_json::Value;

const TOKEN: &str = "a-long-enough-admin-token-for-tests";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, database: &str) -> Server {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("tokens"), format!("{TOKEN}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .args(["--database", database, "serve", "--listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .arg("--admin-token-file")
        .arg(dir.join("tokens"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    Server { child, url }
}

#[test]
fn sweeps_are_posted_to_a_remote_registry_over_tls() {
    let dir = std::env::temp_dir().join(format!("relayguard-remote-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite://{}/registry.db", dir.display());
    let server = serve(&dir, &database);
    let relay = Postfix::start(Personality::OpenRelay);
    let source = scanner_source_addr().to_string();
    let ca = dir.join("cert.pem").display().to_string();
    let sweep = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_relayguard"))
            // The local database must stay untouched: the sweep goes to the server.
            .env(
                "RELAYGUARD_DATABASE",
                "sqlite:///nonexistent/should-not-be-used.db",
            )
            .args([
                "sweep",
                "--no-progress",
                "--format",
                "json",
                "--source",
                &source,
            ])
            .args([
                "--registry",
                &server.url,
                "--token",
                token,
                "--registry-ca",
                &ca,
            ])
            .arg(relay.addr().to_string())
            .output()
            .unwrap()
    };

    let out = sweep(TOKEN);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .args([
            "--database",
            &database,
            "findings",
            "--open",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&findings.stdout).unwrap();
    let kinds: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["address"] == relay.addr().to_string())
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"open-relay") && kinds.contains(&"unregistered-mta"),
        "{kinds:?}"
    );

    let out = sweep("a-wrong-token-of-sufficient-length");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    // The results were still written before the upload failed: nothing is lost.
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["hosts"][0]["address"], relay.addr().to_string());

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
