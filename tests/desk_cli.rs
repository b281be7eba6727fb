//! `relayguard desk-admins …` as the binary runs it: the team's list of administrators who may
//! sign in at the desk, with bad input refused and every change in the audit log.

use std::process::{Command, Output};

fn run(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test]
async fn desk_admins_are_added_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    let out = stdout(&run(
        &url,
        &[
            "desk-admins",
            "add",
            "Carol@Soc.Example.ac.jp",
            "--name",
            "Carol",
            "--lang",
            "ja",
            "--by",
            "soc",
        ],
    ));
    assert_eq!(out.trim(), "added carol@soc.example.ac.jp");
    let list = stdout(&run(&url, &["desk-admins", "list"]));
    assert_eq!(
        list.trim(),
        "carol@soc.example.ac.jp\tCarol\tja\tadded by soc"
    );
    // Bad input: a clear message, exit 2, nothing added.
    let bad = run(&url, &["desk-admins", "add", "carol", "--by", "soc"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid e-mail address"),
        "{bad:?}"
    );
    let bad = run(
        &url,
        &[
            "desk-admins",
            "add",
            "dave@soc.example.ac.jp",
            "--lang",
            "fr",
            "--by",
            "soc",
        ],
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown language"),
        "{bad:?}"
    );
    assert_eq!(
        stdout(&run(&url, &["desk-admins", "list"])).lines().count(),
        1
    );
    // The desk knows Carol now.
    let store = relayguard_registry::Store::open(&url).await.unwrap();
    assert!(
        store
            .known_admin("carol@soc.example.ac.jp")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        stdout(&run(
            &url,
            &[
                "desk-admins",
                "remove",
                "carol@soc.example.ac.jp",
                "--by",
                "soc"
            ]
        ))
        .trim(),
        "removed carol@soc.example.ac.jp"
    );
    assert!(
        store
            .known_admin("carol@soc.example.ac.jp")
            .await
            .unwrap()
            .is_none()
    );
    let again = run(
        &url,
        &[
            "desk-admins",
            "remove",
            "carol@soc.example.ac.jp",
            "--by",
            "soc",
        ],
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not a desk administrator"),
        "{again:?}"
    );
    let log = stdout(&run(&url, &["findings", "audit-log"]));
    assert!(
        log.contains("desk-admin-added") && log.contains("desk-admin-removed"),
        "{log}"
    );
}
