//! The desk's application checks with the real scanner, through `relayguard-registry serve`:
//! DNS consistency against a real nsd (the test zones of relayguard_testkit), the relay audit of
//! mail-direct applications against real Postfix personalities (an open relay needs changes, a
//! closed server passes), and the outcome mails through a real Postfix sink. A clean server in a
//! network namespace the test creates goes the whole way: approved, registered, in the pass-list.
//! Needs root, `ip`, nsd and Postfix.

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

/// `relayguard-registry serve` with the desk on, its checks asking `resolver`, its mails going
/// to `smtp`, its database in `dir`.
fn serve(dir: &std::path::Path, resolver: &str, smtp: &str) -> Server {
    std::fs::write(dir.join("tokens"), format!("{TOKEN}\n")).unwrap();
    let database = format!("sqlite://{}/registry.db", dir.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_relayguard-registry"))
        .args(["--database", &database, "serve", "--listen", "127.0.0.1:0"])
        .arg("--admin-token-file")
        .arg(dir.join("tokens"))
        .args(["--desk-url", "http://registry.lab.example.ac.jp"])
        .args(["--smtp", smtp, "--from", "desk@lab.example.ac.jp"])
        .args(["--resolver", resolver])
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
    Server { child, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_are_checked_with_real_dns_and_a_real_relay_audit() {
    let nsd = Nsd::start().await;
    let sink = Postfix::start_maildir_sink(&["lab.example.ac.jp"]);
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::Closed);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &nsd.addr.to_string(), &sink.smtp_url());

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

/// A GET with the team's token; returns (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let (_, body) = raw.split_once("\r\n\r\n").unwrap();
    (status, body.to_string())
}

/// A network namespace holding one address reachable from here with no route added: a veth
/// pair, 198.19.9.1/29 on this side and 198.19.9.2/29 inside; an address of that /29 put on
/// the namespace's `lo` is answered for over the veth. Deleting the namespace deletes the pair.
struct Netns(String);

impl Netns {
    fn create() -> Netns {
        let ns = Netns(format!("rgdesk{}", std::process::id()));
        let (outer, inner) = (format!("{}o", ns.0), format!("{}i", ns.0));
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &ns.0]);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns.0,
        ]);
        ip(&["addr", "add", "198.19.9.1/29", "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&["-n", &ns.0, "addr", "add", "198.19.9.2/29", "dev", &inner]);
        ip(&["-n", &ns.0, "link", "set", &inner, "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).output();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// The whole way for a clean mail server: a real closed Postfix on an address whose PTR a test
/// zone can serve (loopback's cannot: the resolver answers 127/8 itself), forward, reverse and
/// MX served by a real nsd, the real relay audit. The application is approved on its own, the
/// registration is mail-direct and in the firewall pass-list, and the applicant's mail says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_mail_direct_server_is_approved_into_the_pass_list() {
    const SERVER: &str = "198.19.9.6";
    let soa = |zone: &str| {
        format!(
            "$TTL 300\n@ SOA ns.desk.test. hostmaster.desk.test. 2026120301 3600 600 86400 300\n@ NS ns.desk.test.\n; zone {zone}\n"
        )
    };
    let nsd = Nsd::start_zones(&[
        (
            "desk.test",
            &format!(
                "{}@ MX 10 mx.desk.test.\nns A 127.0.0.1\nmx A {SERVER}\n",
                soa("desk.test")
            ),
        ),
        (
            "6.9.19.198.in-addr.arpa",
            &format!("{}@ PTR mx.desk.test.\n", soa("reverse")),
        ),
    ])
    .await;
    let ns = Netns::create();
    let closed = Postfix::start_in_netns(Personality::Closed, &ns.0, SERVER.parse().unwrap());
    let sink = Postfix::start_maildir_sink(&["lab.example.ac.jp"]);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &nsd.addr.to_string(), &sink.smtp_url());

    let v = tokio::task::block_in_place(|| {
        apply(
            &server,
            SERVER,
            "mx.desk.test",
            "mail-direct",
            Some("desk.test"),
        )
    });
    for name in ["forward", "ptr", "mx", "relay-audit"] {
        assert_eq!(check(&v, name)["passed"], true, "{name}: {v}");
    }
    assert_eq!(v["status"], "approved", "{v}");
    // The audit really spoke to the server: its log has the relay attempts it refused.
    assert!(
        closed.log().contains("Relay access denied"),
        "{}",
        closed.log()
    );

    let (status, body) = get(&server.addr, &format!("/api/v1/hosts/{SERVER}"));
    assert_eq!(status, 200, "{body}");
    let host: Value = serde_json::from_str(
        body.lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("{body}")),
    )
    .unwrap();
    assert_eq!(
        (&host["role"], &host["status"], &host["admin_email"]),
        (&json!("mail-direct"), &json!("active"), &json!(CONTACT)),
        "{host}"
    );
    let (status, list) = get(&server.addr, "/api/v1/export/allowlist.txt");
    assert_eq!(status, 200);
    assert!(list.lines().any(|l| l.trim() == SERVER), "{list}");

    let msgs = tokio::task::block_in_place(|| sink.wait_for(1));
    let mail = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(
        mail.contains(&format!("To: {CONTACT}")) || mail.contains(&format!("<{CONTACT}>")),
        "{mail}"
    );
    assert!(mail.contains("approved"), "{mail}");
    drop(server);
    drop(closed);
}
