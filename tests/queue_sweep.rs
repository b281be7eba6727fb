//! End-to-end: sharded sweeps on the PostgreSQL job queue. A real throwaway PostgreSQL cluster,
//! real `relayguard worker` processes of the built binary, real Postfix and scripted SMTP
//! listeners on loopback that count the connections each address receives.

mod queue_support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use queue_support::*;
use relayguard_testkit::{Personality, Postfix, scanner_source_addr};
use sqlx::Row;

#[test]
fn three_workers_probe_every_address_once_and_find_what_one_process_finds() {
    let open = Postfix::start(Personality::OpenRelay);
    let closed = Postfix::start(Personality::Closed);
    // A /20 of 127.84/16 (no other test listens there), one per test process.
    let third = u8::try_from(std::process::id() % 16 * 16).unwrap();
    let block = format!("127.84.{third}.0/20");
    let listeners: Vec<Ipv4Addr> = [(0, 10), (3, 77), (9, 200), (15, 254)]
        .iter()
        .map(|&(dx, y)| Ipv4Addr::new(127, 84, third + dx, y))
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

    // The same sweep, planned into 10 shards of up to 512 addresses and swept by three workers.
    counts.reset();
    let queued = fresh_postgres();
    let sweep = plan(
        &queued,
        &targets,
        &["--vantage", "outside", "--shard-size", "512"],
    );
    let db = Db::new(&queued);
    // Two Postfix instances side by side make one range, and so one shard.
    let adjacent = u32::from(open.addr()).abs_diff(u32::from(closed.addr())) == 1;
    assert_eq!(
        db.i64(&format!(
            "SELECT count(*) FROM queue_shards WHERE sweep_id = {sweep}"
        )),
        if adjacent { 9 } else { 10 },
        "4096 addresses in 8 shards, and the Postfix addresses"
    );
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start(&queued, "outside", &["--checkpoint", "128"]))
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
        text.contains("outside") && text.contains("merged") && text.contains("4098/4098"),
        "{text}"
    );
}

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
        targets.contains(".0-127.83."),
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
    // The sweep's page shows the same, from the same query.
    let page = runtime().block_on(async {
        let store = relayguard_registry::Store::open(&database).await.unwrap();
        let queued = store.queued_sweep(sweep).await.unwrap().expect("the sweep");
        relayguard_registry::sweep_page::render(&queued)
    });
    assert!(
        page.contains(&format!("outside shard {taken}: ")) && page.contains("<td>merged</td>"),
        "{page}"
    );
}

#[test]
fn the_queue_refuses_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/registry.db", dir.path().display());
    let out = relayguard(&database, &["sweep", "--queue", "127.83.255.0/30"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PostgreSQL") && stderr.contains("SQLite"),
        "{stderr}"
    );
}

#[test]
fn planning_a_slash_8_is_quick() {
    let database = fresh_postgres();
    // Once, so the migrations are not part of the measurement.
    plan(&database, &["10.255.255.0/30".to_string()], &[]);
    let started = Instant::now();
    // Planning only writes rows into this test's own database: no worker ever takes these
    // shards, so not one packet goes to 10.0.0.0/8.
    let sweep = plan(
        &database,
        &["10.0.0.0/8".to_string()],
        &["--vantage", "outside", "--vantage", "lab"],
    );
    let took = started.elapsed();
    let db = Db::new(&database);
    assert_eq!(
        db.i64(&format!(
            "SELECT count(*) FROM queue_shards WHERE sweep_id = {sweep}"
        )),
        2 * 4096,
        "4096 shards of 4096 addresses for each vantage"
    );
    assert_eq!(
        db.i64(&format!(
            "SELECT sum(addresses)::bigint FROM queue_shards WHERE sweep_id = {sweep}"
        )),
        2 << 24
    );
    assert_eq!(
        db.i64("SELECT count(*) FROM apalis.jobs WHERE job_type = 'relayguard.sweep.lab'"),
        4096
    );
    // The whole process: start, connect, plan 8192 shards and jobs, commit.
    assert!(took < Duration::from_secs(5), "planning took {took:?}");
    eprintln!("planning a /8 for two vantages took {took:?}");
}

#[test]
fn a_merge_run_again_records_the_sweep_once() {
    let database = fresh_postgres();
    let third = private_block(3, 4);
    let sweep = plan(
        &database,
        &[format!("127.83.{third}.0/30")],
        &["--vantage", "outside"],
    );
    let db = Db::new(&database);
    let worker = Worker::start(&database, "outside", &[]);
    db.wait_until("the merge", Duration::from_secs(60), |db| {
        db.merged(sweep, "outside")
    });
    assert_eq!(db.i64("SELECT count(*) FROM sweeps"), 1);
    // As if the worker had died after the registry recorded the sweep and before the vantage was
    // marked merged: the engine hands the merge job out again.
    db.rows(&format!(
        "UPDATE queue_vantages SET state = 'merging' WHERE sweep_id = {sweep}"
    ));
    db.rows(
        "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, done_at = NULL \
         WHERE idempotency_key LIKE '%/merge' RETURNING id",
    );
    db.wait_until("the merge again", Duration::from_secs(60), |db| {
        db.merged(sweep, "outside")
    });
    assert_eq!(db.i64("SELECT count(*) FROM sweeps"), 1, "recorded once");
    drop(worker);
}
