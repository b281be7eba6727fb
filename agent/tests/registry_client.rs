//! The agent against the real registry server (relayguard-registry, run in-process on loopback
//! over its real HTTP API): role lookup for `harden`, report upload with the spool, a registry
//! that is down (nothing lost), a wrong token.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use relayguard_registry::Store;
use relayguard_registry::server::{ServeConfig, serve};

const ADMIN: &str = "an-admin-token-for-agent-tests";
const HOST: &str = "127.0.0.42";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the registry on `port` in a background thread (it runs until the test process ends).
fn start_registry(dir: &Path, port: u16) -> String {
    let url = format!("sqlite://{}/registry.db", dir.display());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = Store::open(&url).await.unwrap();
            let config = ServeConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], port)),
                tls_cert: None,
                tls_key: None,
                admin_tokens: vec![ADMIN.to_string()],
                metrics_tokens: Vec::new(),
            };
            serve(store, config).await.unwrap();
        });
    });
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("{base}/api/v1/health")).is_err() {
        assert!(Instant::now() < deadline, "registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    base
}

/// Registers HOST with `role` through the admin API and returns a fresh agent token.
fn enroll(base: &str, role: &str) -> String {
    let http = reqwest::blocking::Client::new();
    let host = serde_json::json!({
        "address": HOST, "hostname": "lab-pc-42.campus.test", "role": role,
        "admin_name": "Lab Admin", "admin_email": "lab-admin@campus.test",
    });
    let r = http
        .post(format!("{base}/api/v1/hosts"))
        .bearer_auth(ADMIN)
        .json(&host)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let r = http
        .post(format!("{base}/api/v1/hosts/{HOST}/agent-token"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    let body: serde_json::Value = r.json().unwrap();
    body["token"].as_str().expect("a token").to_string()
}

fn agent(args: &[&str], token_file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relayguard-agent"))
        .args(args)
        .arg("--token-file")
        .arg(token_file)
        .output()
        .unwrap()
}

fn spooled(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn reports_go_through_the_spool_and_roles_come_from_the_registry() {
    let dir =
        std::env::temp_dir().join(format!("relayguard-agent-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    let spool = dir.join("spool");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "lab-pc-42\n").unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (root_arg, spool_arg) = (root.display().to_string(), spool.display().to_string());
    let report_args = [
        "report",
        "--root",
        &root_arg,
        "--spool-dir",
        &spool_arg,
        "--registry",
        &base,
        "--address",
        HOST,
    ];

    // The registry is down: the report is kept, with a clear error.
    let token_file = dir.join("token");
    std::fs::write(&token_file, "rga_not-yet-enrolled").unwrap();
    let out = agent(&report_args, &token_file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kept in"),
        "{out:?}"
    );
    assert_eq!(spooled(&spool).len(), 1);

    // The registry comes up; a wrong token is refused and the report still kept.
    start_registry(&dir, port);
    let out = agent(&report_args, &token_file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    assert_eq!(spooled(&spool).len(), 2);

    // Enrolled: both spooled reports are delivered, oldest first, and the spool empties.
    std::fs::write(&token_file, enroll(&base, "non-mail")).unwrap();
    let out = agent(&report_args, &token_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sent 3 report(s)"),
        "{out:?}"
    );
    assert!(spooled(&spool).is_empty());
    let reports: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/hosts/{HOST}/reports"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(reports.as_array().map(Vec::len), Some(3), "{reports:#}");

    // harden takes the role from the registry: non-mail goes ahead (dry run) ...
    let harden = [
        "harden",
        "--root",
        &root_arg,
        "--dry-run",
        "--registry",
        &base,
        "--address",
        HOST,
    ];
    let out = agent(&harden, &token_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and the agent cannot read another host's role with its token.
    let other = [
        "harden",
        "--root",
        &root_arg,
        "--dry-run",
        "--registry",
        &base,
        "--address",
        "127.0.0.43",
    ];
    let out = agent(&other, &token_file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    // Registered as a mail server: harden refuses (exit 4) and changes nothing.
    let r = reqwest::blocking::Client::new()
        .patch(format!("{base}/api/v1/hosts/{HOST}"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "role": "mail-direct" }))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let out = agent(&harden, &token_file);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mail server"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
