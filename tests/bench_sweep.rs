//! Benchmark, not a test (ignored by default; run by `bench/sweep-loopback.sh`): a loopback /16
//! with 8 live Postfix instances, swept and fully audited by the release binary under
//! `/usr/bin/time -v`; then a /20 around the same instances, to show memory stays flat.

use std::process::Command;
use std::time::Instant;

use relayguard_testkit::{Personality, Postfix, scanner_source_addr};

struct Run {
    wall_s: f64,
    peak_rss_kib: u64,
    cpu_s: f64,
    open: u64,
    findings: u64,
    addresses: u64,
}

fn sweep(block: &str, extra: &[&str]) -> Run {
    let out_file =
        std::env::temp_dir().join(format!("relayguard-bench-{}.json", std::process::id()));
    let source = scanner_source_addr().to_string();
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_relayguard"))
        .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
        .args([
            "sweep",
            block,
            "--source",
            &source,
            "--format",
            "json",
            "--no-progress",
        ])
        .arg("-o")
        .arg(&out_file)
        .args(extra)
        .output()
        .expect("run /usr/bin/time (Debian package `time`)");
    let wall_s = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| -> f64 {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in /usr/bin/time output:\n{stderr}"))
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).expect("sweep output")).expect("JSON");
    let _ = std::fs::remove_file(&out_file);
    Run {
        wall_s,
        peak_rss_kib: field("Maximum resident set size (kbytes):") as u64,
        cpu_s: field("User time (seconds):") + field("System time (seconds):"),
        open: doc["summary"]["open"].as_u64().unwrap(),
        findings: doc["summary"]["findings"].as_u64().unwrap(),
        addresses: doc["summary"]["addresses"].as_u64().unwrap(),
    }
}

#[test]
#[ignore = "benchmark: run bench/sweep-loopback.sh"]
fn sweep_loopback_blocks_with_live_postfix() {
    let personalities = [
        Personality::OpenRelay,
        Personality::Closed,
        Personality::ClosedStrict,
        Personality::Backscatter,
        Personality::StartTlsSelfSigned,
        Personality::UntrustedRouting,
        Personality::Closed,
        Personality::OpenRelay,
    ];
    let instances: Vec<Postfix> = personalities.into_iter().map(Postfix::start).collect();
    let [a, b, c, _] = instances[0].addr().octets();
    assert!(
        instances
            .iter()
            .all(|p| p.addr().octets()[..3] == [a, b, c])
    );
    let slash16 = format!("{a}.{b}.0.0/16");
    let slash20 = format!("{a}.{b}.{}.0/20", c & 0xf0);
    let extra: Vec<String> = std::env::var("RELAYGUARD_BENCH_ARGS")
        .unwrap_or_else(|_| "--rate 0 --concurrency 2048".into())
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();

    println!(
        "| block | addresses | open | findings | wall s | addresses/s | CPU s | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for block in [&slash20, &slash16, &slash20, &slash16] {
        let r = sweep(block, &extra);
        assert_eq!(r.open, 8, "every live Postfix found in {block}");
        assert!(r.findings >= 8);
        println!(
            "| {block} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.1} |",
            r.addresses,
            r.open,
            r.findings,
            r.wall_s,
            r.addresses as f64 / r.wall_s,
            r.cpu_s,
            r.peak_rss_kib as f64 / 1024.0
        );
    }
    println!("extra arguments: {}", extra.join(" "));
}

/// nmap's verdict line for one host from `smtp-open-relay` output.
fn nmap_verdict(output: &str) -> String {
    output
        .lines()
        .find(|l| {
            l.contains("Server is an open relay")
                || l.contains("Server doesn't seem")
                || l.contains("authentication")
        })
        .map(|l| l.trim_start_matches(['|', '_', ' ']).trim().to_string())
        .unwrap_or_else(|| "no verdict".into())
}

#[test]
#[ignore = "comparison: run bench/compare-nmap.sh"]
fn compare_with_nmap_smtp_open_relay() {
    let personalities = [
        ("open relay", Personality::OpenRelay),
        ("closed (stock 454)", Personality::Closed),
        ("closed strict (554)", Personality::ClosedStrict),
        ("backscatter source", Personality::Backscatter),
        ("STARTTLS self-signed", Personality::StartTlsSelfSigned),
        (
            "backup MX, untrusted routing",
            Personality::UntrustedRouting,
        ),
    ];
    let source = scanner_source_addr().to_string();
    println!(
        "| Postfix personality | nmap smtp-open-relay | nmap s | relayguard findings | relayguard s |"
    );
    println!("|---|---|---|---|---|");
    for (label, p) in personalities {
        let pf = Postfix::start(p);
        let addr = pf.addr().to_string();
        let started = Instant::now();
        let nmap = Command::new("nmap")
            .args([
                "-Pn",
                "-n",
                "-sT",
                "-p25",
                "-S",
                &source,
                "-e",
                "lo",
                "--script",
                "smtp-open-relay",
            ])
            .args(["--script-args", "smtp-open-relay.domain=example.com", &addr])
            .output()
            .expect("nmap (Debian package nmap)");
        let nmap_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
            .env("RELAYGUARD_DATABASE", relayguard_testkit::test_database())
            .args([
                "sweep",
                &addr,
                "--source",
                &source,
                "--format",
                "json",
                "--no-progress",
            ])
            .output()
            .unwrap();
        let rg_s = started.elapsed().as_secs_f64();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let kinds: Vec<String> = doc["hosts"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect();
        println!(
            "| {label} | {} | {nmap_s:.1} | {} | {rg_s:.2} |",
            nmap_verdict(&String::from_utf8_lossy(&nmap.stdout)),
            kinds.join(", ")
        );
    }
}
