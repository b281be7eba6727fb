//! Shared by the queue tests: a fresh PostgreSQL database, scripted counting SMTP listeners,
//! worker processes, and SQL against the queue's tables.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relayguard_testkit::db::{Kind, TestDb};
use relayguard_testkit::scanner_source_addr;
use serde_json::Value;
use sqlx::Row;

/// Options every sweep in these tests shares: quick timeouts, no DNS.
pub const SWEEP_OPTIONS: &[&str] = &[
    "--no-progress",
    "--no-dns",
    "--connect-timeout",
    "2",
    "--command-timeout",
    "10",
    "--host-deadline",
    "60",
];

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn fresh_postgres() -> String {
    runtime().block_on(TestDb::new(Kind::Postgres)).url
}

/// A block of 127.83/16 of its own for this test process and test, where nothing else listens.
pub fn private_block(test: u32, prefix_third_octet_step: u32) -> u8 {
    let slot = (std::process::id() % 16) * 4 + test;
    u8::try_from((slot * prefix_third_octet_step) % 256).unwrap()
}

/// Counts the connections each address receives.
#[derive(Clone, Default)]
pub struct Counts(pub Arc<Mutex<BTreeMap<Ipv4Addr, u32>>>);

impl Counts {
    pub fn get(&self, ip: Ipv4Addr) -> u32 {
        self.0.lock().unwrap().get(&ip).copied().unwrap_or(0)
    }
    pub fn snapshot(&self) -> BTreeMap<Ipv4Addr, u32> {
        self.0.lock().unwrap().clone()
    }
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A scripted SMTP server on `ip:25` that refuses to relay; counts every connection.
pub fn scripted_listener(ip: Ipv4Addr, counts: &Counts) {
    let listener = TcpListener::bind(SocketAddr::from((ip, 25))).expect("bind a loopback listener");
    let counts = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            *counts.0.lock().unwrap().entry(ip).or_default() += 1;
            std::thread::spawn(move || serve(stream));
        }
    });
}

pub fn serve(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut out = stream.try_clone().unwrap();
    if out
        .write_all(b"220 scripted.campus.test ESMTP\r\n")
        .is_err()
    {
        return;
    }
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-scripted.campus.test\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 ok\r\n",
            "RCPT" => b"554 5.7.1 Relay access denied\r\n",
            "VRFY" => b"252 maybe\r\n",
            "QUIT" => {
                let _ = out.write_all(b"221 bye\r\n");
                return;
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

pub fn relayguard(database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", database)
        .args(args)
        .output()
        .expect("run relayguard")
}

/// Plans a queued sweep and returns its number.
pub fn plan(database: &str, targets: &[String], extra: &[&str]) -> i64 {
    let source = scanner_source_addr().to_string();
    let mut args = vec!["sweep", "--queue", "--source", &source];
    args.extend_from_slice(SWEEP_OPTIONS);
    args.extend_from_slice(extra);
    args.extend(targets.iter().map(String::as_str));
    let out = relayguard(database, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "planning failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sweep number in {stdout:?}"))
}

pub static WORKERS: AtomicU32 = AtomicU32::new(0);

/// A worker process with a short lease (1 s heartbeats, 3 missed).
pub struct Worker {
    pub child: Child,
    pub name: String,
    log: std::path::PathBuf,
}

impl Worker {
    pub fn start(database: &str, vantage: &str, extra: &[&str]) -> Worker {
        let name = format!(
            "w{}-{}",
            std::process::id(),
            WORKERS.fetch_add(1, Ordering::SeqCst)
        );
        let log = std::env::temp_dir().join(format!("relayguard-{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_relayguard"))
            .env("RELAYGUARD_DATABASE", database)
            .args(["worker", "--vantage", vantage, "--name", &name])
            .args(["--heartbeat", "1", "--missed-heartbeats", "3"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start a worker");
        Worker { child, name, log }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs SQL against the test database.
pub struct Db {
    rt: tokio::runtime::Runtime,
    pub pool: sqlx::PgPool,
}

impl Db {
    pub fn new(url: &str) -> Db {
        let rt = runtime();
        let pool = rt.block_on(sqlx::PgPool::connect(url)).unwrap();
        Db { rt, pool }
    }

    pub fn rows(&self, sql: &str) -> Vec<sqlx::postgres::PgRow> {
        self.rt
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&self.pool))
            .unwrap()
    }

    pub fn i64(&self, sql: &str) -> i64 {
        self.rows(sql)
            .first()
            .map_or(0, |r| r.try_get::<i64, _>(0).unwrap())
    }

    /// (done, state, worker) of a shard.
    pub fn shard(&self, sweep: i64, shard: i64) -> (i64, String, Option<String>) {
        let rows = self.rows(&format!(
            "SELECT done, state, worker FROM queue_shards WHERE sweep_id = {sweep} AND shard = {shard}"
        ));
        let r = &rows[0];
        (r.get(0), r.get(1), r.get(2))
    }

    /// (address, port, written_by) of every result of a sweep.
    pub fn results(&self, sweep: i64) -> BTreeSet<(String, i32, String)> {
        self.rows(&format!(
            "SELECT address, port, written_by FROM queue_results WHERE sweep_id = {sweep}"
        ))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    }

    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut(&Db) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn merged(&self, sweep: i64, vantage: &str) -> bool {
        self.i64(&format!(
            "SELECT count(*) FROM queue_vantages WHERE sweep_id = {sweep} \
             AND vantage = '{vantage}' AND state = 'merged'"
        )) == 1
    }
}

/// (address, kind) of the open findings in a registry.
pub fn findings(database: &str) -> BTreeSet<(String, String)> {
    let out = relayguard(
        database,
        &["findings", "--status", "open", "--format", "json"],
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("findings: {e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    rows.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["address"].as_str().unwrap().to_string(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A /24 swept slowly (`--rate`) as one shard, so a worker can be stopped mid-shard.
pub fn slow_shard(test: u32) -> (String, Vec<Ipv4Addr>, Counts) {
    let third = private_block(test, 4);
    let block = format!("127.83.{third}.0/24");
    let listeners: Vec<Ipv4Addr> = [5, 40, 200]
        .iter()
        .map(|&y| Ipv4Addr::new(127, 83, third, y))
        .collect();
    let counts = Counts::default();
    for ip in &listeners {
        scripted_listener(*ip, &counts);
    }
    (block, listeners, counts)
}

pub const SLOW: &[&str] = &[
    "--vantage",
    "outside",
    "--shard-size",
    "256",
    "--rate",
    "40",
];
