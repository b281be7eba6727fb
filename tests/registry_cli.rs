//! The registry commands (`src/registry_cmd/`) as the `relayguard` binary runs them (SQLite file).

use std::process::Command;

/// A failed command: its standard error, which carries the whole error chain.
#[derive(Debug)]
struct Failed(String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Runs `relayguard --database URL ARGS…`: its standard output, or its standard error when it
/// fails.
async fn run(url: &str, args: &[&str]) -> Result<String, Failed> {
    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        Err(Failed(String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

#[tokio::test]
async fn hosts_networks_findings_agents() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    let add = |addr: &'static str, role: &'static str| {
        let url = url.clone();
        async move {
            run(
                &url,
                &[
                    "hosts",
                    "add",
                    addr,
                    "--hostname",
                    "mx.example.ac.jp",
                    "--role",
                    role,
                    "--admin-name",
                    "Tanaka",
                    "--admin-email",
                    "tanaka@example.ac.jp",
                ],
            )
            .await
        }
    };
    assert!(
        add("192.0.2.25", "mail-direct")
            .await
            .unwrap()
            .contains("registered 192.0.2.25")
    );
    assert!(add("2001:db8::25", "mail-direct").await.is_ok());
    let e = add("192.0.2.25", "non-mail").await.unwrap_err();
    assert!(e.to_string().contains("already registered"), "{e}");
    let e = add("192.0.2.x", "non-mail").await.unwrap_err();
    assert!(e.to_string().contains("invalid IP address"), "{e}");
    let e = add("192.0.2.26", "smtp").await.unwrap_err();
    assert!(e.to_string().contains("invalid role"), "{e}");

    let list = run(&url, &["hosts", "list"]).await.unwrap();
    assert!(
        list.starts_with("ADDRESS") && list.contains("2001:db8::25"),
        "{list}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &run(&url, &["hosts", "list", "--format", "json"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    run(
        &url,
        &[
            "hosts",
            "update",
            "192.0.2.25",
            "--note",
            "bad\x1b[31mnote",
            "--status",
            "active",
        ],
    )
    .await
    .unwrap_err();
    run(
        &url,
        &[
            "hosts",
            "update",
            "192.0.2.25",
            "--role",
            "mail-via-gateway",
            "--reviewed",
        ],
    )
    .await
    .unwrap();
    let show = run(&url, &["hosts", "show", "192.0.2.25"]).await.unwrap();
    assert!(
        show.contains("mail-via-gateway") && show.contains("review due"),
        "{show}"
    );

    let nft = run(&url, &["hosts", "export", "--format", "nft"])
        .await
        .unwrap();
    assert!(
        nft.contains("elements = { 2001:db8::25 }") && !nft.contains("192.0.2.25"),
        "{nft}"
    );
    assert_eq!(
        run(&url, &["hosts", "export", "--format", "plain"])
            .await
            .unwrap(),
        "2001:db8::25\n"
    );
    let out = dir.path().join("hosts.csv");
    run(
        &url,
        &["hosts", "export", "--output", out.to_str().unwrap()],
    )
    .await
    .unwrap();

    // Import into a second registry from the export.
    let url2 = format!("sqlite://{}", dir.path().join("reg2.db").display());
    assert!(
        run(&url2, &["hosts", "import", out.to_str().unwrap()])
            .await
            .unwrap()
            .contains("imported 2")
    );
    let e = run(&url2, &["hosts", "import", out.to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already registered"), "{e}");
    let e = run(&url2, &["hosts", "import", "/nonexistent.csv"])
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("reading /nonexistent.csv"),
        "{e:#}"
    );

    run(
        &url,
        &[
            "networks",
            "add",
            "192.0.2.0/24",
            "--owner-name",
            "Lab",
            "--owner-email",
            "lab@example.ac.jp",
        ],
    )
    .await
    .unwrap();
    let e = run(
        &url,
        &[
            "networks",
            "add",
            "192.0.2.0/99",
            "--owner-name",
            "L",
            "--owner-email",
            "l@example.ac.jp",
        ],
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("invalid CIDR"), "{e}");
    assert!(
        run(&url, &["networks", "list", "--format", "csv"])
            .await
            .unwrap()
            .contains("192.0.2.0/24,Lab")
    );

    // A sweep seen by an unregistered listener, then the findings listing in every format.
    let store = relayguard_registry::Store::open(&url).await.unwrap();
    let mut r = relayguard_core::scan::HostResult::unreachable(
        "192.0.2.99".parse().unwrap(),
        25,
        relayguard_core::scan::PortState::Open,
    );
    r.smtp = Some(relayguard_core::scan::SmtpInfo {
        banner: "220 \x1b[2Jhi".into(),
        mta: "other".into(),
        ..Default::default()
    });
    let meta = relayguard_registry::SweepMeta {
        vantage: "t".into(),
        targets: vec!["192.0.2.0/24".into()],
        ports: vec![25],
        started_at: 1,
        finished_at: 2,
    };
    relayguard_registry::record_sweep(&store, &meta, &[r])
        .await
        .unwrap();
    let table = run(&url, &["findings", "--open"]).await.unwrap();
    assert!(
        table.contains("unregistered-mta") && table.contains("lab@example.ac.jp"),
        "{table}"
    );
    assert!(
        !table.contains('\x1b'),
        "control characters must be escaped: {table:?}"
    );
    let csv = run(
        &url,
        &["findings", "--format", "csv", "--severity", "medium"],
    )
    .await
    .unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let json: serde_json::Value = serde_json::from_str(
        &run(
            &url,
            &[
                "findings",
                "--format",
                "json",
                "--admin",
                "nobody@x.example",
            ],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert!(json.as_array().unwrap().is_empty());
    assert!(
        run(&url, &["findings", "--severity", "dire"])
            .await
            .is_err()
    );
    assert!(
        run(&url, &["findings", "--open", "--status", "resolved"])
            .await
            .is_err()
    );

    let token = run(&url, &["agents", "token", "192.0.2.25"]).await.unwrap();
    assert!(
        token.starts_with("rga_") && token.trim().len() == 68,
        "{token}"
    );
    assert!(
        run(&url, &["agents", "token", "192.0.2.1"])
            .await
            .unwrap_err()
            .to_string()
            .contains("not found")
    );

    assert!(run(&url, &["hosts", "rm", "192.0.2.25"]).await.is_ok());
    assert!(run(&url, &["hosts", "rm", "192.0.2.25"]).await.is_err());
    assert!(run(&url, &["networks", "rm", "192.0.2.0/24"]).await.is_ok());
    assert!(
        run("mysql://x", &["hosts", "list"])
            .await
            .unwrap_err()
            .to_string()
            .contains("opening registry")
    );
}

#[test]
fn default_database_url_is_in_the_data_directory() {
    let url = relayguard_registry::default_database_url();
    assert!(
        url.starts_with("sqlite://") && url.ends_with("relayguard/registry.db"),
        "{url}"
    );
}

#[tokio::test]
async fn sending_needs_an_smtp_server_and_a_sender() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    let err = run(
        &url,
        &[
            "notify",
            "--from",
            "relayguard <relayguard@campus.test>",
            "--fallback",
            "soc@campus.test",
        ],
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("--smtp"), "{err:#}");
    let err = run(
        &url,
        &[
            "notify",
            "--smtp",
            "smtp://127.0.0.1:1",
            "--fallback",
            "soc@campus.test",
        ],
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("--from"), "{err:#}");
}
