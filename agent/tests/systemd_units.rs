//! The shipped systemd units pass the real `systemd-analyze verify`, and every flag they (and
//! the cron example) pass to the agent exists.

use std::path::Path;
use std::process::Command;

fn dist(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dist")
            .join(name),
    )
    .unwrap()
}

#[test]
fn units_verify_with_systemd_analyze() {
    let dir = std::env::temp_dir().join(format!("relayguard-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = dir.join("agent.env");
    std::fs::write(
        &env_file,
        "RELAYGUARD_REGISTRY=https://registry.example\nRELAYGUARD_ADDRESS=192.0.2.42\n",
    )
    .unwrap();
    // Point the unit at the binary under test and a settings file that exists.
    let service = dist("relayguard-agent.service")
        .replace(
            "/usr/local/bin/relayguard-agent",
            env!("CARGO_BIN_EXE_relayguard-agent"),
        )
        .replace(
            "/etc/relayguard-agent/agent.env",
            &env_file.display().to_string(),
        );
    std::fs::write(dir.join("relayguard-agent.service"), service).unwrap();
    std::fs::write(
        dir.join("relayguard-agent.timer"),
        dist("relayguard-agent.timer"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .current_dir(&dir)
        .args([
            "verify",
            "relayguard-agent.service",
            "relayguard-agent.timer",
        ])
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_flags_the_units_use_exist() {
    let help = |cmd: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_relayguard-agent"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let (harden, report) = (help("harden"), help("report"));
    for text in [
        dist("relayguard-agent.service"),
        dist("relayguard-agent.cron"),
    ] {
        for line in text.lines().filter(|l| l.contains("relayguard-agent ")) {
            for part in line.split(';') {
                let words: Vec<&str> = part.split_whitespace().collect();
                let Some(at) = words
                    .iter()
                    .position(|w| w.ends_with("bin/relayguard-agent"))
                else {
                    continue;
                };
                let usage = match words[at + 1] {
                    "harden" => &harden,
                    "report" => &report,
                    other => panic!("unexpected subcommand {other} in {line}"),
                };
                for flag in words.iter().filter(|w| w.starts_with("--")) {
                    assert!(
                        usage.contains(flag),
                        "{flag} (in {line}) is not a flag of the agent"
                    );
                }
            }
        }
    }
}
