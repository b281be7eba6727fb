//! The desk's application checks with the real scanner, through `relayguard-registry serve`:
//! DNS consistency against a real nsd (the test zones of relayguard_testkit), the relay audit of
//! mail-direct applications against real Postfix personalities (an open relay needs changes, a
//! closed server passes), and the outcome mails through a real Postfix sink.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use relayguard_testkit::nsd::Nsd;
use relayguard_testkit::postfix::{Personality, Postfix};
use serde_json::{Value, json};

const TOKEN: &str = "desk-checks-team-token-0123456789";
const CONTACT: &str = "alice@lab.example.ac.jp";

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 POST with the team's token; returns (status, body).
fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let (_, body) = raw.split_once("\r\n\r\n").unwrap();
    // The server may answer chunked: the JSON is the one line that starts with `{`.
    let body = body
        .lines()
        .find(|l| l.starts_with('{') || l.starts_with('['))
        .unwrap_or(body)
        .to_string();
    (status, body)
}

fn apply(
    server: &Server,
    address: &str,
    hostname: &str,
    role: &str,
    domain: Option<&str>,
) -> Value {
    apply_in(server, address, hostname, role, domain, "en")
}

fn apply_in(
    server: &Server,
    address: &str,
    hostname: &str,
    role: &str,
    domain: Option<&str>,
    lang: &str,
) -> Value {
    let mut a = json!({ "address": address, "hostname": hostname, "role": role,
                        "contact_name": "Alice", "contact_email": CONTACT, "lang": lang });
    if let Some(d) = domain {
        a["mail_domain"] = json!(d);
    }
    let (status, body) = post(&server.addr, "/api/v1/applications", &a.to_string());
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_are_checked_with_real_dns_and_a_real_relay_audit() {
    let nsd = Nsd::start().await;
    let sink = Postfix::start_maildir_sink(&["lab.example.ac.jp"]);
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::Closed);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), format!("{TOKEN}\n")).unwrap();
    let database = format!("sqlite://{}/registry.db", dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_relayguard-registry"))
        .args(["--database", &database, "serve", "--listen", "127.0.0.1:0"])
        .arg("--admin-token-file")
        .arg(dir.path().join("tokens"))
        .args(["--desk-url", "http://registry.lab.example.ac.jp"])
        .args([
            "--smtp",
            &sink.smtp_url(),
            "--from",
            "desk@lab.example.ac.jp",
        ])
        .args(["--resolver", &nsd.addr.to_string()])
        .args([
            "--audit-allow-special",
            "--audit-rate",
            "0",
            "--external-domain",
            "ext.example",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    let server = Server { child, addr };

    // Name and PTR agree (mail.campus.test = 192.0.2.10): an internal-only host is approved.
    let v = tokio::task::block_in_place(|| {
        apply(
            &server,
            "192.0.2.10",
            "mail.campus.test",
            "internal-only",
            None,
        )
    });
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(check(&v, "forward")["passed"], true);
    assert_eq!(check(&v, "ptr")["passed"], true, "{v}");
    // For a mail role the MX of campus.test must name it, and it names mx, mx2, mx6 only.
    let v = tokio::task::block_in_place(|| {
        apply(
            &server,
            "192.0.2.10",
            "mail.campus.test",
            "mail-via-gateway",
            None,
        )
    });
    assert_eq!(v["status"], "needs-changes", "{v}");
    let mx = check(&v, "mx");
    assert_eq!(mx["passed"], false);
    assert!(
        mx["detail"].as_str().unwrap().contains("mx.campus.test"),
        "{mx}"
    );
    // mx.campus.test is in the MX; its address is loopback, whose PTR no test zone can serve.
    let v = tokio::task::block_in_place(|| {
        apply(
            &server,
            "127.0.0.10",
            "mx.campus.test",
            "mail-via-gateway",
            None,
        )
    });
    assert_eq!(check(&v, "forward")["passed"], true, "{v}");
    assert_eq!(check(&v, "mx")["passed"], true, "{v}");
    // 192.0.2.30's PTR names elsewhere.campus.test, which resolves to 192.0.2.31.
    let v = tokio::task::block_in_place(|| {
        apply(
            &server,
            "192.0.2.30",
            "elsewhere.campus.test",
            "internal-only",
            None,
        )
    });
    assert_eq!(v["status"], "needs-changes");
    assert_eq!(check(&v, "forward")["passed"], false);
    assert!(
        check(&v, "forward")["detail"]
            .as_str()
            .unwrap()
            .contains("192.0.2.31"),
        "{v}"
    );

    // mail-direct: the real audit. The open relay is caught with the Postfix fix, in the
    // contact's language; the closed server passes the audit (its test name is in no zone, so
    // DNS still asks for changes).
    let v = tokio::task::block_in_place(|| {
        apply_in(
            &server,
            &open.addr().to_string(),
            open.hostname(),
            "mail-direct",
            Some("campus.test"),
            "ja",
        )
    });
    assert_eq!(v["status"], "needs-changes", "{v}");
    let audit = check(&v, "relay-audit");
    assert_eq!(audit["passed"], false, "{v}");
    assert!(
        audit["detail"].as_str().unwrap().contains("open-relay"),
        "{audit}"
    );
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "open-relay")
        .expect("open-relay finding");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("smtpd_relay_restrictions")
            && f["fix"]
                .as_str()
                .unwrap()
                .contains("/etc/postfix/main.cf で"),
        "{f}"
    );
    let v = tokio::task::block_in_place(|| {
        apply(
            &server,
            &closed.addr().to_string(),
            closed.hostname(),
            "mail-direct",
            Some("campus.test"),
        )
    });
    let audit = check(&v, "relay-audit");
    assert_eq!(audit["passed"], true, "{v}");
    assert!(
        !v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "open-relay"
                || f["kind"] == "relay-suspected"
                || f["kind"] == "backscatter-source"),
        "{v}"
    );

    // One outcome mail per application reached the contact.
    let msgs = tokio::task::block_in_place(|| sink.wait_for(6));
    assert_eq!(msgs.len(), 6);
    let raw: Vec<String> = msgs
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    // The open relay's outcome is in Japanese (an RFC 2047 encoded subject), the others in
    // English, and the closed server's says it needs changes (its DNS).
    assert_eq!(
        raw.iter()
            .filter(|m| m.contains("Subject: =?utf-8?"))
            .count(),
        1,
        "{raw:?}"
    );
    let closed_mail = raw
        .iter()
        .find(|m| m.contains(&format!("Subject: Application 6 for {}", closed.addr())))
        .unwrap_or_else(|| panic!("the closed server's outcome mail: {raw:?}"));
    assert!(closed_mail.contains("needs changes"), "{closed_mail}");
    drop(server);
}
