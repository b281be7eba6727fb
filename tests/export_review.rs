//! `relayguard review run` as the binary runs it: an expired registration is out of the
//! exports, a dry run writes its reminder with the renewal link, and bad flags say what is
//! wrong. (Delivery through real Postfix and the renewal against the real server are in
//! registry/tests/review.rs.)

use std::process::Command;

/// Runs `relayguard --database URL ARGS…`: Ok(stdout) or Err(stderr).
fn relayguard(url: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run relayguard: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn an_expired_registration_leaves_the_exports_and_gets_a_reminder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    for (address, dates) in [
        ("192.0.2.25", &[][..]),
        (
            "192.0.2.26",
            &[
                "--registered-on",
                "2020-01-01",
                "--reviewed-on",
                "2020-01-01",
            ][..],
        ),
    ] {
        let mut args = vec![
            "hosts",
            "add",
            address,
            "--hostname",
            "mx.example.ac.jp",
            "--role",
            "mail-direct",
            "--admin-name",
            "Tanaka",
            "--admin-email",
            "tanaka@example.ac.jp",
        ];
        args.extend_from_slice(dates);
        relayguard(&url, &args).unwrap();
    }
    assert_eq!(
        relayguard(&url, &["hosts", "export", "--format", "plain"]).unwrap(),
        "192.0.2.25\n"
    );

    let out = dir.path().join("eml");
    let printed = relayguard(
        &url,
        &[
            "review",
            "run",
            "--dry-run",
            "--out",
            out.to_str().unwrap(),
            "--base-url",
            "https://registry.example.ac.jp/",
        ],
    )
    .unwrap();
    assert!(
        printed.starts_with("wrote 192.0.2.26 (expired 2020-07-01): tanaka@example.ac.jp"),
        "{printed}"
    );
    assert_eq!(printed.lines().count(), 1, "{printed}");
    let eml: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(eml.len(), 1);
    let text = std::fs::read_to_string(eml[0].as_ref().unwrap().path()).unwrap();
    assert!(
        text.contains("https://registry.example.ac.jp/review/rv_"),
        "{text}"
    );
    let findings = relayguard(&url, &["findings", "--format", "csv"]).unwrap();
    assert!(
        findings.contains("registration-expired") && findings.contains("192.0.2.26"),
        "{findings}"
    );

    let e = relayguard(&url, &["review", "run", "--base-url", "https://r.example"]).unwrap_err();
    assert!(e.contains("give --smtp"), "{e}");
    let e = relayguard(
        &url,
        &[
            "review",
            "run",
            "--dry-run",
            "--base-url",
            "registry.example",
        ],
    )
    .unwrap_err();
    assert!(e.contains("invalid --base-url"), "{e}");
    let e = relayguard(&url, &["review", "run", "--dry-run"]).unwrap_err();
    assert!(e.contains("--base-url"), "{e}");
}
