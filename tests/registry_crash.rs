//! Acknowledged writes survive `kill -9` of the server: the real binary is started, hammered by
//! concurrent clients, killed with SIGKILL mid-stream, and every write it answered 201 to must be
//! in the database afterwards. Runs on SQLite and PostgreSQL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relayguard_testkit::db::{Kind, TestDb};

const ADMIN: &str = "crash-test-admin-token-0123456789";

fn start(url: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relayguard-registry"))
        .args(["--database", url, "serve", "--listen", "127.0.0.1:0"])
        .env("RELAYGUARD_ADMIN_TOKENS", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("//")
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"));
    (child, addr)
}

/// One HTTP/1.1 request; returns the status code, or None if the connection failed.
fn post(addr: SocketAddr, path: &str, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split(' ').nth(1)?.parse().ok()
}

async fn acknowledged_writes_survive_kill_9(kind: Kind) {
    let t = TestDb::new(kind).await;
    // Migrated before the server starts, so every request the test sends finds the tables.
    relayguard_registry::Store::open(&t.url)
        .await
        .unwrap()
        .close()
        .await;
    let (mut child, addr) = start(&t.url);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let address = format!("10.{w}.{}.{}", i / 256, i % 256);
                    let body = format!(
                        r#"{{"address":"{address}","hostname":"h{w}-{i}.example.ac.jp","role":"non-mail","admin_name":"A","admin_email":"a@example.ac.jp"}}"#
                    );
                    match post(addr, "/api/v1/hosts", &body) {
                        Some(201) => acked.lock().unwrap().push(address),
                        Some(other) => panic!("unexpected status {other} for {address}"),
                        None => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "only {} writes acknowledged before the deadline",
        acked.len()
    );

    let store = relayguard_registry::Store::open(&t.url).await.unwrap();
    let present: std::collections::HashSet<String> = store
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.address)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|a| !present.contains(*a)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost after kill -9: {lost:?}",
        lost.len()
    );

    // And the server starts again on the same database.
    let (mut again, addr) = start(&t.url);
    let body = r#"{"address":"10.9.9.9","hostname":"after.example.ac.jp","role":"non-mail","admin_name":"A","admin_email":"a@example.ac.jp"}"#;
    assert_eq!(post(addr, "/api/v1/hosts", body), Some(201));
    again.kill().unwrap();
    again.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_acknowledged_writes_survive_kill_9() {
    acknowledged_writes_survive_kill_9(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_acknowledged_writes_survive_kill_9() {
    acknowledged_writes_survive_kill_9(Kind::Postgres).await;
}
