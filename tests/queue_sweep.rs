//! End-to-end: sharded sweeps on the PostgreSQL job queue. A real throwaway PostgreSQL cluster,
//! real `relayguard worker` processes of the built binary, real Postfix and scripted SMTP
//! listeners on loopback that count the connections each address receives.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relayguard_testkit::db::{Kind, TestDb};
use relayguard_testkit::{Personality, Postfix, scanner_source_addr};
use serde_json::Value;
use sqlx::Row;

/// Options every sweep in these tests shares: quick timeouts, no DNS.
const SWEEP_OPTIONS: &[&str] = &[
    "--no-progress",
    "--no-dns",
    "--connect-timeout",
    "2",
    "--command-timeout",
    "10",
    "--host-deadline",
    "60",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn fresh_postgres() -> String {
    runtime().block_on(TestDb::new(Kind::Postgres)).url
}

/// A block of 127.78/16 of its own for this test process and test, where nothing else listens.
fn private_block(test: u32, prefix_third_octet_step: u32) -> u8 {
    let slot = (std::process::id() % 16) * 4 + test;
    u8::try_from((slot * prefix_third_octet_step) % 256).unwrap()
}

/// Counts the connections each address receives.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<BTreeMap<Ipv4Addr, u32>>>);

impl Counts {
    fn get(&self, ip: Ipv4Addr) -> u32 {
        self.0.lock().unwrap().get(&ip).copied().unwrap_or(0)
    }
    fn snapshot(&self) -> BTreeMap<Ipv4Addr, u32> {
        self.0.lock().unwrap().clone()
    }
    fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A scripted SMTP server on `ip:25` that refuses to relay; counts every connection.
fn scripted_listener(ip: Ipv4Addr, counts: &Counts) {
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

fn serve(stream: TcpStream) {
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

fn relayguard(database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", database)
        .args(args)
        .output()
        .expect("run relayguard")
}

/// Plans a queued sweep and returns its number.
fn plan(database: &str, targets: &[String], extra: &[&str]) -> i64 {
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

static WORKERS: AtomicU32 = AtomicU32::new(0);

/// A worker process with a short lease (1 s heartbeats, 3 missed).
struct Worker {
    child: Child,
    name: String,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(database: &str, vantage: &str, extra: &[&str]) -> Worker {
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

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    fn stderr(&self) -> String {
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
struct Db {
    rt: tokio::runtime::Runtime,
    pool: sqlx::PgPool,
}

impl Db {
    fn new(url: &str) -> Db {
        let rt = runtime();
        let pool = rt.block_on(sqlx::PgPool::connect(url)).unwrap();
        Db { rt, pool }
    }

    fn rows(&self, sql: &str) -> Vec<sqlx::postgres::PgRow> {
        self.rt
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&self.pool))
            .unwrap()
    }

    fn i64(&self, sql: &str) -> i64 {
        self.rows(sql)
            .first()
            .map_or(0, |r| r.try_get::<i64, _>(0).unwrap())
    }

    /// (done, state, worker) of a shard.
    fn shard(&self, sweep: i64, shard: i64) -> (i64, String, Option<String>) {
        let rows = self.rows(&format!(
            "SELECT done, state, worker FROM queue_shards WHERE sweep_id = {sweep} AND shard = {shard}"
        ));
        let r = &rows[0];
        (r.get(0), r.get(1), r.get(2))
    }

    /// (address, port, written_by) of every result of a sweep.
    fn results(&self, sweep: i64) -> BTreeSet<(String, i32, String)> {
        self.rows(&format!(
            "SELECT address, port, written_by FROM queue_results WHERE sweep_id = {sweep}"
        ))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    }

    fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut(&Db) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn merged(&self, sweep: i64, vantage: &str) -> bool {
        self.i64(&format!(
            "SELECT count(*) FROM queue_vantages WHERE sweep_id = {sweep} \
             AND vantage = '{vantage}' AND state = 'merged'"
        )) == 1
    }
}

/// (address, kind) of the open findings in a registry.
fn findings(database: &str) -> BTreeSet<(String, String)> {
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

#[test]
fn three_workers_probe_every_address_once_and_find_what_one_process_finds() {
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::Closed);
    let third = private_block(0, 4);
    let block = format!("127.78.{third}.0/22");
    let listeners: Vec<Ipv4Addr> = [(0, 10), (1, 77), (2, 200), (3, 254)]
        .iter()
        .map(|&(dx, y)| Ipv4Addr::new(127, 78, third + dx, y))
        .collect();
    let counts = Counts::default();
    for ip in &listeners {
        scripted_listener(*ip, &counts);
    }
    let targets = vec![block, open.addr().to_string(), closed.addr().to_string()];

    // The reference: one `relayguard sweep` process, recorded in a registry of its own.
    let single = fresh_postgres();
    let source = scanner_source_addr().to_string();
    let mut args = vec!["sweep", "--source", &source, "--vantage", "outside"];
    args.extend_from_slice(SWEEP_OPTIONS);
    args.extend(targets.iter().map(String::as_str));
    let out = relayguard(&single, &args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference_counts = counts.snapshot();
    let reference_findings = findings(&single);
    assert!(
        reference_findings.contains(&(open.addr().to_string(), "open-relay".to_string())),
        "the reference sweep found the open relay: {reference_findings:?}"
    );
    for ip in &listeners {
        assert!(reference_counts.get(ip).copied().unwrap_or(0) > 0);
    }

    // The same sweep, planned into 9 shards of 128 addresses and swept by three workers.
    counts.reset();
    let queued = fresh_postgres();
    let sweep = plan(
        &queued,
        &targets,
        &["--vantage", "outside", "--shard-size", "128"],
    );
    let db = Db::new(&queued);
    assert_eq!(
        db.i64(&format!(
            "SELECT count(*) FROM queue_shards WHERE sweep_id = {sweep}"
        )),
        9,
        "1024 addresses in 8 shards, and the two Postfix addresses"
    );
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start(&queued, "outside", &["--checkpoint", "64"]))
        .collect();
    db.wait_until("the merge", Duration::from_secs(180), |db| {
        db.merged(sweep, "outside")
    });
    // Every worker took part (the shards are claimed one at a time).
    let takers: BTreeSet<String> = db
        .rows(&format!(
            "SELECT DISTINCT worker FROM queue_shards WHERE sweep_id = {sweep}"
        ))
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(takers.len() >= 2, "shards were shared: {takers:?}");
    drop(workers);

    assert_eq!(
        counts.snapshot(),
        reference_counts,
        "every address saw the same connections as in one process: none probed twice"
    );
    assert_eq!(findings(&queued), reference_findings);

    let show = relayguard(&queued, &["sweeps", "show", &sweep.to_string()]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("outside") && text.contains("merged") && text.contains("1026/1026"),
        "{text}"
    );
}

/// A /24 swept slowly (`--rate`) as one shard, so a worker can be stopped mid-shard.
fn slow_shard(test: u32) -> (String, Vec<Ipv4Addr>, Counts) {
    let third = private_block(test, 4);
    let block = format!("127.78.{third}.0/24");
    let listeners: Vec<Ipv4Addr> = [5, 40, 200]
        .iter()
        .map(|&y| Ipv4Addr::new(127, 78, third, y))
        .collect();
    let counts = Counts::default();
    for ip in &listeners {
        scripted_listener(*ip, &counts);
    }
    (block, listeners, counts)
}

const SLOW: &[&str] = &[
    "--vantage",
    "outside",
    "--shard-size",
    "256",
    "--rate",
    "40",
];

#[test]
fn a_killed_worker_loses_at_most_one_checkpoint() {
    let (block, listeners, counts) = slow_shard(1);
    let database = fresh_postgres();
    let sweep = plan(&database, &[block], SLOW);
    let db = Db::new(&database);
    let first = Worker::start(&database, "outside", &["--checkpoint", "32"]);
    db.wait_until("the first checkpoint", Duration::from_secs(60), |db| {
        db.shard(sweep, 0).0 >= 32
    });
    first.signal("-KILL");
    let (done_at_kill, _, _) = db.shard(sweep, 0);
    assert!(done_at_kill < 256, "killed mid-shard");

    let second = Worker::start(&database, "outside", &["--checkpoint", "32"]);
    db.wait_until("the merge", Duration::from_secs(120), |db| {
        db.merged(sweep, "outside")
    });
    let (done, state, worker) = db.shard(sweep, 0);
    assert_eq!((done, state.as_str()), (256, "done"));
    assert_eq!(worker.as_deref(), Some(second.name.as_str()));
    // The first checkpoint was not redone; at most the one in flight at the kill was.
    let [early, middle, late] = [listeners[0], listeners[1], listeners[2]];
    let once = counts.get(late);
    assert!(once > 0);
    assert_eq!(
        counts.get(early),
        once,
        "a checkpointed address is not probed again"
    );
    assert!(counts.get(middle) == once || counts.get(middle) == 2 * once);
    // No address lost: every listener has its result, and the registry covers the whole block.
    let results = db.results(sweep);
    for ip in &listeners {
        assert!(
            results
                .iter()
                .any(|(a, p, _)| *a == ip.to_string() && *p == 25)
        );
    }
    let row = db.rows("SELECT targets FROM sweeps");
    let targets: String = row[0].get(0);
    assert!(
        targets.contains(".0-127.78."),
        "coverage is the whole block: {targets}"
    );
}

#[test]
fn a_worker_paused_past_its_lease_writes_nothing() {
    let (block, _listeners, _counts) = slow_shard(2);
    let database = fresh_postgres();
    let sweep = plan(&database, &[block], SLOW);
    let db = Db::new(&database);
    let stale = Worker::start(&database, "outside", &["--checkpoint", "32"]);
    db.wait_until("the first checkpoint", Duration::from_secs(60), |db| {
        db.shard(sweep, 0).0 >= 32
    });
    stale.signal("-STOP");
    let owner = Worker::start(&database, "outside", &["--checkpoint", "32"]);
    db.wait_until("the merge", Duration::from_secs(120), |db| {
        db.merged(sweep, "outside")
    });
    let shard_before = db.shard(sweep, 0);
    let results_before = db.results(sweep);
    assert_eq!(shard_before.2.as_deref(), Some(owner.name.as_str()));

    stale.signal("-CONT");
    // The stale worker finishes the range it had in flight (32 addresses at 40 a second) and
    // tries to write it: the fence refuses.
    let start = Instant::now();
    while !stale.stderr().contains("lost the lease") && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        db.shard(sweep, 0),
        shard_before,
        "the shard row is the new owner's"
    );
    assert_eq!(
        db.results(sweep),
        results_before,
        "no result was overwritten"
    );
    assert!(
        stale.stderr().contains("lost the lease"),
        "the stale worker noticed: {}",
        stale.stderr()
    );
}

#[test]
fn a_shard_that_outlives_its_attempts_is_quarantined_and_the_sweep_finishes() {
    let (block, _listeners, _counts) = slow_shard(3);
    let database = fresh_postgres();
    // Two shards: the first is taken by a worker that dies; with --max-attempts 1 the next
    // worker quarantines it instead of sweeping it again.
    let sweep = plan(
        &database,
        &[block],
        &[
            "--vantage",
            "outside",
            "--shard-size",
            "128",
            "--rate",
            "40",
        ],
    );
    let db = Db::new(&database);
    let doomed = Worker::start(&database, "outside", &["--checkpoint", "32"]);
    db.wait_until("a checkpoint", Duration::from_secs(60), |db| {
        db.shard(sweep, 0).0 >= 32 || db.shard(sweep, 1).0 >= 32
    });
    doomed.signal("-KILL");
    let (taken, other) = if db.shard(sweep, 0).0 >= 32 {
        (0, 1)
    } else {
        (1, 0)
    };
    let next = Worker::start(
        &database,
        "outside",
        &["--checkpoint", "32", "--max-attempts", "1"],
    );
    db.wait_until("the merge", Duration::from_secs(120), |db| {
        db.merged(sweep, "outside")
    });
    assert_eq!(db.shard(sweep, taken).1, "quarantined");
    assert_eq!(db.shard(sweep, other).1, "done");
    assert!(
        next.stderr()
            .contains(&format!("quarantined shard {taken}")),
        "{}",
        next.stderr()
    );
    // Exact coverage: only the shard that was swept is recorded.
    let targets: String = db.rows("SELECT targets FROM sweeps")[0].get(0);
    let (swept, skipped) = if taken == 0 {
        (".128-", ".0-")
    } else {
        (".0-", ".128-")
    };
    assert!(
        targets.contains(swept) && !targets.contains(skipped),
        "{targets}"
    );
    let show = relayguard(&database, &["sweeps", "show", &sweep.to_string()]);
    assert_eq!(show.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&show.stdout)
            .contains(&format!("quarantined: outside shard {taken}"))
    );
}

#[test]
fn the_queue_refuses_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/registry.db", dir.path().display());
    let out = relayguard(&database, &["sweep", "--queue", "127.78.255.0/30"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PostgreSQL") && stderr.contains("SQLite"),
        "{stderr}"
    );
}
