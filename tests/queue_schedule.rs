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

/// A `relayguard serve` process with its scheduler every second; killed on drop.
struct Serve(std::process::Child);

impl Serve {
    fn start(database: &str) -> Serve {
        Serve(
            Command::new(env!("CARGO_BIN_EXE_relayguard"))
                .env("RELAYGUARD_DATABASE", database)
                .env("RELAYGUARD_SCHEDULE_EVERY", "1")
                .env("RELAYGUARD_ADMIN_TOKENS", "t0ken-for-the-schedule-test")
                .args(["serve", "--listen", "127.0.0.1:0"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_processes_fire_each_slot_once_and_a_removed_schedule_stops() {
    let database = fresh_postgres();
    let third = u8::try_from(std::process::id() % 16 * 16 + 10).unwrap();
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
    // Two registry servers, both running the scheduler, and no worker.
    let servers = [Serve::start(&database), Serve::start(&database)];
    db.wait_until("three slots fired", Duration::from_secs(60), |db| {
        db.i64("SELECT count(*) FROM queue_schedule_slots") >= 3
    });
    // Each fired slot planned exactly one sweep, and no sweep is without its slot.
    assert_eq!(
        db.i64("SELECT count(*) FROM queue_sweeps"),
        db.i64("SELECT count(*) FROM queue_schedule_slots"),
    );
    assert_eq!(
        db.i64("SELECT count(DISTINCT sweep_id) FROM queue_schedule_slots"),
        db.i64("SELECT count(*) FROM queue_schedule_slots"),
    );

    // Removed: no slot of it fires any more, and a second removal says there is none.
    let out = relayguard(&database, &["schedule", "remove", "often"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A round that read the schedule just before the removal may still commit one slot.
    std::thread::sleep(Duration::from_secs(2));
    let sweeps = db.i64("SELECT count(*) FROM queue_sweeps");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(db.i64("SELECT count(*) FROM queue_sweeps"), sweeps);
    let again = relayguard(&database, &["schedule", "remove", "often"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no schedule named"));
    let list = relayguard(&database, &["schedule", "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("often"));

    // What the two servers say they planned is every sweep there is, each once.
    let mut planned = 0;
    for mut s in servers {
        let _ = s.0.kill();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut s.0.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains("serve runs the sweep scheduler"), "{err}");
        planned += err.matches("planned as sweep").count();
    }
    assert_eq!(planned as i64, sweeps);
}

#[test]
fn the_systemd_timer_example_verifies() {
    // systemd-analyze checks the ExecStart binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/systemd");
    for unit in ["relayguard-schedule.service", "relayguard-schedule.timer"] {
        let text = std::fs::read_to_string(format!("{src}/{unit}")).unwrap();
        assert!(
            text.contains("relayguard") && !text.contains("\t"),
            "{unit}"
        );
        let text = text.replace(
            "/usr/local/bin/relayguard",
            env!("CARGO_BIN_EXE_relayguard"),
        );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let service = std::fs::read_to_string(dir.path().join("relayguard-schedule.service")).unwrap();
    assert!(service.contains(&format!(
        "ExecStart={} schedule run-due",
        env!("CARGO_BIN_EXE_relayguard")
    )));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("relayguard-schedule.timer"))
        .arg(dir.path().join("relayguard-schedule.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
