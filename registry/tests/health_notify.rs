//! What notify mails about a full queue and a bounce burst: what the agent saw and what to do
//! with that MTA's own commands, in English and Japanese. A real dry run writes the messages;
//! they are parsed back as MIME. Real SQLite and PostgreSQL.

mod common;

use common::Kind;
use mailparse::ParsedMail;
use relayguard_core::agent_report::{
    AgentReport, CheckResult, HostIdentity, LiveFacts, Mta, QueueHealth, SCHEMA_VERSION,
};
use relayguard_registry::model::{HostInput, now_unix, today};
use relayguard_registry::notify::{Delivery, Lang, NotifyOptions, notify};

const ALICE: &str = "alice@lab.example.ac.jp";
const BOB: &str = "bob@lab.example.ac.jp";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(queue_findings_are_mailed_with_what_was_seen_and_what_to_do);

fn report(mta: Mta, source: &str) -> AgentReport {
    AgentReport {
        schema_version: SCHEMA_VERSION,
        agent_version: "0.1.0".into(),
        generated_at: 1_800_000_000,
        host: HostIdentity {
            hostname: "mx".into(),
            machine_id: None,
            os: None,
        },
        check: CheckResult {
            root: "/".into(),
            live: LiveFacts::Checked,
            findings: vec![],
            warnings: vec![],
        },
        actions: vec![],
        reappeared: vec![],
        queue: Some(QueueHealth {
            mta,
            source: source.into(),
            queues: [("frozen".to_string(), 12), ("waiting".to_string(), 600)]
                .into_iter()
                .collect(),
            messages: 612,
            null_sender: 130,
            oldest_age_secs: Some(2 * 86400 + 3 * 3600),
            bounces_since_last: Some(45),
        }),
    }
}

/// The text and HTML parts of a message.
fn parts(raw: &[u8]) -> (String, String) {
    fn part(m: &ParsedMail<'_>, ctype: &str) -> String {
        if m.ctype.mimetype == ctype {
            return m.get_body().unwrap();
        }
        m.subparts
            .iter()
            .map(|p| part(p, ctype))
            .find(|s| !s.is_empty())
            .unwrap_or_default()
    }
    let m = mailparse::parse_mail(raw).unwrap();
    (part(&m, "text/plain"), part(&m, "text/html"))
}

async fn queue_findings_are_mailed_with_what_was_seen_and_what_to_do(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    for (address, admin, lang) in [("10.4.0.25", ALICE, "en"), ("10.4.0.26", BOB, "ja")] {
        s.add_host(
            &HostInput {
                address: address.into(),
                hostname: format!("mx-{lang}.lab.example.ac.jp"),
                role: "mail-direct".into(),
                admin_name: "Admin".into(),
                admin_email: admin.into(),
                admin_lang: Some(lang.into()),
                ..Default::default()
            }
            .validate(today())
            .unwrap(),
        )
        .await
        .unwrap();
    }
    let exim = report(Mta::Exim, "exim -bpc, exim -bp");
    s.add_agent_report(
        "10.4.0.25",
        "r1",
        &exim,
        &serde_json::to_string(&exim).unwrap(),
    )
    .await
    .unwrap();
    let smtpd = report(Mta::Opensmtpd, "smtpctl show queue");
    s.add_agent_report(
        "10.4.0.26",
        "r1",
        &smtpd,
        &serde_json::to_string(&smtpd).unwrap(),
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let outcome = notify(
        s,
        &NotifyOptions {
            delivery: Delivery::DryRun(dir.path().to_path_buf()),
            from: "relayguard <relayguard@lab.example.ac.jp>".into(),
            lang: Lang::En,
            fallback: None,
            reminder_days: 7,
            now: now_unix(),
        },
    )
    .await
    .unwrap();
    assert_eq!(outcome.digests.len(), 2, "{:?}", outcome.lines());
    let mail = |admin: &str| {
        let f = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().contains(admin))
            .unwrap_or_else(|| panic!("no .eml for {admin}"));
        parts(&std::fs::read(f.path()).unwrap())
    };

    let (text, html) = mail(ALICE);
    for body in [&text, &html] {
        assert!(body.contains("mail-queue-backlog"), "{body}");
        assert!(body.contains("bounce-burst"), "{body}");
        for seen in [
            "The agent saw 612 messages queued (frozen 12, waiting 600; `exim -bpc, exim -bp`)",
            "130 of them bounces (null sender)",
            "45 bounces generated since its previous report",
            "the oldest has waited 2 d 3 h",
            "What to do about the mail queue (Exim)",
            "xargs exim -Mrm",
        ] {
            assert!(body.contains(seen), "{seen}\n{body}");
        }
        assert!(!body.contains("postsuper"), "Exim's commands only");
    }
    assert!(text.contains("exiqgrep -f '^<>$' -i"), "{text}");
    // The HTML part escapes what it quotes.
    assert!(html.contains("exiqgrep -f '^&lt;&gt;$' -i"), "{html}");
    // Once in the text: the advice is per host, not per finding.
    assert_eq!(text.matches("What to do about the mail queue").count(), 1);

    let (text, html) = mail(BOB);
    for body in [&text, &html] {
        assert!(
            body.contains("エージェントの報告: キュー内 612 通"),
            "{body}"
        );
        assert!(
            body.contains("前回の報告以降に生成したバウンス 45 通"),
            "{body}"
        );
        assert!(
            body.contains("最も古いメッセージは 2 日 3 時間 待機中"),
            "{body}"
        );
        assert!(body.contains("メールキューへの対処 (OpenSMTPD)"), "{body}");
        assert!(body.contains("smtpctl remove ID"), "{body}");
    }
}
