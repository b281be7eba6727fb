//! End-to-end: the registry's PostgreSQL server restarted (`pg_ctl restart -m immediate`) in the
//! middle of a sharded sweep; the workers reconnect and finish, and nothing is lost. Its own test
//! binary, because the restart hits every database of the test process's cluster.

mod queue_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use queue_support::*;
use sqlx::Row;

/// Restarts the test cluster at once (no checkpoint, no clean shutdown of sessions).
fn restart_postgres(db: &Db) {
    let rows = db.rows("SELECT current_setting('data_directory'), (SELECT setting FROM pg_config WHERE name = 'BINDIR')");
    let data: String = rows[0].get(0);
    let bindir: String = rows[0].get(1);
    let pg_ctl = format!("{bindir}/pg_ctl");
    let args = ["-D", data.as_str(), "-m", "immediate", "-w", "restart"];
    // The test cluster runs as `postgres` when the tests run as root.
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--", &pg_ctl])
            .args(args)
            .stdout(Stdio::null())
            .status()
    } else {
        Command::new(&pg_ctl)
            .args(args)
            .stdout(Stdio::null())
            .status()
    }
    .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl restart");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn workers_reconnect_after_a_postgres_restart_and_finish() {
    let (block, listeners, counts) = slow_shard(0);
    let database = fresh_postgres();
    let sweep = plan(
        &database,
        &[block],
        &["--vantage", "outside", "--shard-size", "64", "--rate", "40"],
    );
    let db = Db::new(&database);
    let workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start(&database, "outside", &["--checkpoint", "16"]))
        .collect();
    db.wait_until("a checkpoint", Duration::from_secs(60), |db| {
        db.i64(&format!(
            "SELECT count(*) FROM queue_shards WHERE sweep_id = {sweep} AND done > 0"
        )) > 0
    });
    let unfinished = db.i64(&format!(
        "SELECT count(*) FROM queue_shards WHERE sweep_id = {sweep} AND state <> 'done'"
    ));
    assert!(unfinished > 0, "the restart comes mid-sweep");
    restart_postgres(&db);
    let db = Db::new(&database);
    db.wait_until("the merge", Duration::from_secs(180), |db| {
        db.merged(sweep, "outside")
    });
    assert_eq!(
        db.i64(&format!(
            "SELECT count(*) FROM queue_shards WHERE sweep_id = {sweep} AND state = 'done' AND done = 64"
        )),
        4,
        "every shard finished"
    );
    let results = db.results(sweep);
    for ip in &listeners {
        assert!(counts.get(*ip) > 0);
        assert!(
            results
                .iter()
                .any(|(a, p, _)| *a == ip.to_string() && *p == 25),
            "{ip} has its result"
        );
    }
    let targets: String = db.rows("SELECT targets FROM sweeps")[0].get(0);
    assert!(targets.contains(".0-127.83."), "{targets}");
    drop(workers);
}
