//! End-to-end: scheduled sweeps on a real PostgreSQL cluster. The same slot fired by two
//! processes at once plans one sweep; after downtime the missed slots fire once, not once each;
//! a worker's scheduler plans and its workers sweep the result.

mod queue_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use queue_support::*;

fn run_due(database: &str, at: i64) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", database)
        .args(["schedule", "run-due", "--at", &at.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_slot_fires_once_however_many_processes_fire_it() {
    let database = fresh_postgres();
    let third = u8::try_from(std::process::id() % 16 * 16 + 8).unwrap();
    let out = relayguard(
        &database,
        &[
            "schedule",
            "add",
            "nightly",
            "--cron",
            "0 3 * * *",
            "--vantage",
            "outside",
            "--no-dns",
            &format!("127.83.{third}.0/28"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = Db::new(&database);
    // Three days later: three 03:00 slots were missed. Two processes fire at once.
    let later = now() + 3 * 86_400;
    let children: Vec<_> = (0..2).map(|_| run_due(&database, later)).collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let planned: usize = outputs
        .iter()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .matches("planned as sweep")
                .count()
        })
        .sum();
    assert_eq!(planned, 1, "one process planned the slot");
    assert_eq!(
        db.i64("SELECT count(*) FROM queue_sweeps"),
        1,
        "one sweep for three missed slots"
    );
    assert_eq!(db.i64("SELECT count(*) FROM queue_schedule_slots"), 1);
    assert_eq!(
        db.i64("SELECT count(*) FROM queue_shards"),
        1,
        "16 addresses, one shard"
    );

    // Firing the same time again plans nothing; the next day's slot plans one more.
    let again = run_due(&database, later).wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&again.stdout).contains("planned"));
    assert_eq!(db.i64("SELECT count(*) FROM queue_sweeps"), 1);
    let next = run_due(&database, later + 86_400)
        .wait_with_output()
        .unwrap();
    assert!(String::from_utf8_lossy(&next.stdout).contains("planned as sweep 2"));
    assert_eq!(db.i64("SELECT count(*) FROM queue_sweeps"), 2);

    // A worker of the vantage sweeps both and merges them.
    let worker = Worker::start(&database, "outside", &[]);
    db.wait_until("both merges", Duration::from_secs(120), |db| {
        db.merged(1, "outside") && db.merged(2, "outside")
    });
    drop(worker);
}

#[test]
fn a_running_worker_fires_a_due_slot() {
    let database = fresh_postgres();
    let third = u8::try_from(std::process::id() % 16 * 16 + 9).unwrap();
    // Every two seconds (six fields, seconds first).
    let out = relayguard(
        &database,
        &[
            "schedule",
            "add",
            "often",
            "--cron",
            "*/2 * * * * *",
            "--vantage",
            "lab",
            "--no-dns",
            &format!("127.83.{third}.0/30"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = Db::new(&database);
    let worker = Worker::start(&database, "lab", &[]);
    db.wait_until("a scheduled sweep merged", Duration::from_secs(60), |db| {
        db.merged(1, "lab")
    });
    drop(worker);
    let list = relayguard(&database, &["schedule", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("often") && text.contains("sweep "), "{text}");
}
