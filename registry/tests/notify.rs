//! `relayguard notify` end to end: digests delivered by lettre to a real Postfix that files them
//! in a Maildir, parsed back with `mailparse`; plus dry runs into .eml files.

mod common;

use std::path::Path;

use mailparse::{MailHeaderMap, ParsedMail};
use relayguard_core::scan::HostResult;
use relayguard_registry::model::{Host, HostStatus, Network, Role, format_date, now_unix, today};
use relayguard_registry::notify::mail::SmtpOptions;
use relayguard_registry::notify::{Delivery, Lang, NotifyOptions, notify, sent};
use relayguard_registry::{Store, SweepMeta, record_sweep};
use serde_json::json;

use relayguard_testkit::Postfix;

const ALICE: &str = "alice@lab.example.ac.jp";
const BOB: &str = "bob@lab.example.ac.jp";
const OWNER: &str = "owner@net.example.ac.jp";
const SOC: &str = "soc@soc.example.ac.jp";
const FROM: &str = "relayguard <relayguard@soc.example.ac.jp>";
const DOMAINS: &[&str] = &[
    "lab.example.ac.jp",
    "net.example.ac.jp",
    "soc.example.ac.jp",
];
/// What an injected header would deliver to; not a domain the sink accepts.
const INJECTED: &str = "attacker@evil.example";

fn host(address: &str, name: &str, role: Role, admin_name: &str, admin_email: &str) -> Host {
    let d = format_date(today());
    Host {
        admin_lang: None,
        address: address.into(),
        hostname: name.into(),
        role,
        admin_name: admin_name.into(),
        admin_email: admin_email.into(),
        note: String::new(),
        registered_on: d.clone(),
        reviewed_on: d,
        review_months: 6,
        status: HostStatus::Active,
    }
}

fn line(session: u32, dir: &str, text: &str) -> serde_json::Value {
    json!({ "session": session, "ms": 5, "dir": dir, "text": text })
}

/// A port-25 result that spoke SMTP as `mta`, with `findings` (core's JSON shape).
fn result(address: &str, mta: &str, findings: serde_json::Value) -> HostResult {
    serde_json::from_value(json!({
        "address": address,
        "port": 25,
        "source": "198.19.0.1",
        "state": "open",
        "smtp": { "banner": format!("220 mx ESMTP {mta}"), "mta": mta, "starttls": false },
        "tests": [],
        "findings": findings,
        "transcript": { "lines": [] },
        "elapsed_ms": 42
    }))
    .expect("valid HostResult JSON")
}

fn open_relay() -> serde_json::Value {
    json!({
        "kind": "open-relay",
        "severity": "critical",
        "summary": "accepted 1 of 16 relay tests without authentication (plain-external)",
        "evidence": {
            "relay_strength": "external",
            "tests": ["plain-external"],
            "transcript": [
                line(2, "client", "EHLO relayguard.invalid"),
                line(2, "server", "250 mx"),
                line(2, "client", "MAIL FROM:<relaytest@relayguard.invalid>"),
                line(2, "server", "250 2.1.0 Ok"),
                line(2, "client", "RCPT TO:<victim@external.example>"),
                line(2, "server", "250 2.1.5 Ok"),
                line(2, "client", "RSET"),
                line(2, "server", "250 2.0.0 Ok")
            ]
        }
    })
}

fn backscatter() -> serde_json::Value {
    json!({
        "kind": "backscatter-source",
        "severity": "high",
        "summary": "accepts mail for unknown local users at RCPT (<zz9q@lab.example.ac.jp>); it will bounce spam to forged senders",
        "evidence": {
            "tests": ["backscatter"],
            "transcript": [
                line(3, "client", "MAIL FROM:<>"),
                line(3, "server", "250 OK"),
                line(3, "client", "RCPT TO:<zz9q@lab.example.ac.jp>"),
                line(3, "server", "250 Accepted")
            ]
        }
    })
}

fn meta(targets: &[&str]) -> SweepMeta {
    let now = now_unix();
    SweepMeta {
        vantage: "campus-core".into(),
        targets: targets
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        ports: vec![25],
        started_at: now - 5,
        finished_at: now,
    }
}

/// Alice runs an open Postfix relay (10.1.0.10) and a non-mail host answering with Sendmail
/// (10.1.0.11); Bob (whose registered name carries CR/LF and a Bcc header) runs an Exim that
/// accepts unknown recipients; 10.2.3.4 is unregistered qmail relaying in the owner's block;
/// 192.0.2.50 is in no block at all (fallback).
async fn seed(store: &Store) {
    store
        .add_host(&host(
            "10.1.0.10",
            "mx1.lab.example.ac.jp",
            Role::MailDirect,
            "Alice Sato",
            ALICE,
        ))
        .await
        .unwrap();
    store
        .add_host(&host(
            "10.1.0.11",
            "pc11.lab.example.ac.jp",
            Role::NonMail,
            "Alice Sato",
            ALICE,
        ))
        .await
        .unwrap();
    store
        .add_host(&host(
            "10.1.0.20",
            "mx2.lab.example.ac.jp",
            Role::MailDirect,
            &format!("Bob\r\nBcc: {INJECTED}\r\nX-Injected: yes"),
            BOB,
        ))
        .await
        .unwrap();
    store
        .add_network(&Network {
            owner_lang: None,
            cidr: "10.2.0.0/16".into(),
            owner_name: "Network Owner".into(),
            owner_email: OWNER.into(),
            note: String::new(),
        })
        .await
        .unwrap();
    let results = vec![
        result("10.1.0.10", "postfix", json!([open_relay()])),
        result("10.1.0.11", "sendmail", json!([])),
        result("10.1.0.20", "exim", json!([backscatter()])),
        result("10.2.3.4", "qmail", json!([open_relay()])),
        result("192.0.2.50", "exchange", json!([])),
    ];
    record_sweep(store, &meta(&["10.0.0.0/8", "192.0.2.0/24"]), &results)
        .await
        .unwrap();
}

/// What the `notify` flags say, as the command line (`src/registry_cmd/notify.rs`) turns them
/// into [`NotifyOptions`].
#[derive(Clone)]
struct NotifyArgs {
    dry_run: bool,
    out: Option<std::path::PathBuf>,
    smtp: Option<String>,
    starttls: bool,
    smtp_user: Option<String>,
    smtp_password_file: Option<std::path::PathBuf>,
    smtp_ca: Option<std::path::PathBuf>,
    from: Option<String>,
    lang: Lang,
    fallback: Option<String>,
    reminder_days: u32,
}

fn args() -> NotifyArgs {
    NotifyArgs {
        dry_run: false,
        out: None,
        smtp: None,
        starttls: false,
        smtp_user: None,
        smtp_password_file: None,
        smtp_ca: None,
        from: Some(FROM.into()),
        lang: Lang::En,
        fallback: Some(SOC.into()),
        reminder_days: 7,
    }
}

fn options(a: NotifyArgs) -> NotifyOptions {
    let delivery = if a.dry_run {
        Delivery::DryRun(a.out.unwrap_or_else(|| "notify-out".into()))
    } else {
        Delivery::Smtp(SmtpOptions {
            url: a.smtp.expect("--smtp"),
            starttls: a.starttls,
            user: a.smtp_user,
            password: a.smtp_password_file.map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .trim_end_matches(['\r', '\n'])
                    .to_string()
            }),
            ca_pem: a.smtp_ca.map(|p| std::fs::read(p).unwrap()),
        })
    };
    NotifyOptions {
        delivery,
        from: a
            .from
            .unwrap_or_else(|| "relayguard <relayguard@relayguard.invalid>".into()),
        lang: a.lang,
        fallback: a.fallback,
        reminder_days: a.reminder_days,
        now: now_unix(),
    }
}

/// Runs notify as the command does: its report lines, and an error when a digest failed.
async fn run_to(
    url: &str,
    a: NotifyArgs,
    out: &mut Vec<u8>,
) -> Result<(), relayguard_registry::Error> {
    let store = Store::open(url).await?;
    let outcome = notify(&store, &options(a)).await?;
    for line in outcome.lines() {
        out.extend_from_slice(format!("{line}\n").as_bytes());
    }
    if outcome.failures() > 0 {
        return Err(relayguard_registry::Error::Invalid(format!(
            "{} of {} notices could not be delivered",
            outcome.failures(),
            outcome.digests.len()
        )));
    }
    Ok(())
}

async fn run(url: &str, a: NotifyArgs) -> Result<String, relayguard_registry::Error> {
    let mut out = Vec::new();
    run_to(url, a, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

/// A delivered message, parsed.
struct Mail {
    raw: String,
    delivered_to: Vec<String>,
    to: String,
    subject: String,
    text: String,
    html: String,
}

fn parse(raw: &[u8]) -> Mail {
    let m = mailparse::parse_mail(raw).expect("parse message");
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
    assert_eq!(m.ctype.mimetype, "multipart/alternative");
    Mail {
        raw: String::from_utf8_lossy(raw).into_owned(),
        delivered_to: m.headers.get_all_values("Delivered-To"),
        to: m.headers.get_first_value("To").unwrap_or_default(),
        subject: m.headers.get_first_value("Subject").unwrap_or_default(),
        text: part(&m, "text/plain"),
        html: part(&m, "text/html"),
    }
}

fn for_addr<'a>(mails: &'a [Mail], addr: &str) -> Vec<&'a Mail> {
    mails
        .iter()
        .filter(|m| m.delivered_to.iter().any(|d| d == addr))
        .collect()
}

/// The registry's page of one host, as an admin sees it.
async fn host_page(store: &Store, address: &str) -> String {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    const TOKEN: &str = "notify-test-admin-token-0123456789";
    let app = relayguard_registry::api::router(relayguard_registry::api::AppState {
        store: store.clone(),
        admin_tokens: std::sync::Arc::new(vec![TOKEN.to_string()]),
        metrics_tokens: std::sync::Arc::new(Vec::new()),
    });
    let resp = app
        .oneshot(
            axum::http::Request::get(format!("/hosts/{address}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), axum::http::StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// The header block (Maildir files have LF line endings, .eml files CRLF).
fn headers(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    raw.split("\n\n").next().unwrap_or_default().to_string()
}

// Blocking calls (starting Postfix, polling the Maildir) run on the multi-thread runtime's
// worker; the notify run they wait for is already finished, so nothing starves.
async fn full_flow(kind: common::Kind) {
    let sink = Postfix::start_maildir_sink(DOMAINS);
    let ts = common::open(kind).await;
    seed(&ts.store).await;
    let smtp = || NotifyArgs {
        smtp: Some(sink.smtp_url()),
        ..args()
    };

    // Without a fallback, the finding in no block has nobody to go to: a clear error, nothing sent.
    let err = run(
        &ts.url,
        NotifyArgs {
            fallback: None,
            ..smtp()
        },
    )
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("192.0.2.50") && msg.contains("--fallback"),
        "{msg}"
    );
    assert!(sent::list_notices(&ts.store).await.unwrap().is_empty());

    // First run: one digest per responsible address.
    let out = run(&ts.url, smtp()).await.unwrap();
    assert_eq!(
        out.lines().filter(|l| l.starts_with("sent ")).count(),
        4,
        "{out}"
    );
    let mails: Vec<Mail> = sink.wait_for(4).iter().map(|r| parse(r)).collect();
    assert_eq!(mails.len(), 4);
    for m in &mails {
        assert_eq!(
            m.delivered_to.len(),
            1,
            "one recipient per message:\n{}",
            headers(&m.raw)
        );
        assert!(
            m.subject
                .starts_with("[relayguard] Mail server findings on your hosts"),
            "{}",
            m.subject
        );
        assert!(
            !headers(&m.raw).to_ascii_lowercase().contains("\nbcc:"),
            "{}",
            headers(&m.raw)
        );
        assert!(
            !headers(&m.raw).contains("X-Injected"),
            "{}",
            headers(&m.raw)
        );
        assert!(
            m.raw.contains("Message-ID: <relayguard."),
            "{}",
            headers(&m.raw)
        );
    }
    assert!(
        !sink.log().contains(INJECTED),
        "an injected Bcc reached the envelope:\n{}",
        sink.log()
    );

    // Alice: her two hosts only; the open relay with its MAIL/RCPT evidence and the Postfix fix;
    // the non-mail host with how to stop Sendmail at boot.
    // The host's page lists what was mailed about it, to whom, under which Message-ID.
    let page = host_page(&ts.store, "10.1.0.10").await;
    let notices = &page[page.find("<h2>Notices</h2>").expect("a Notices section")..];
    let notices = &notices[..notices.find("<h2>Sweep history</h2>").unwrap()];
    let alice_mail = for_addr(&mails, ALICE)[0];
    let message_id = alice_mail
        .raw
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: <"))
        .map(|id| id.trim_end_matches(['>', '\r']))
        .expect("a Message-ID");
    assert!(
        notices.contains(ALICE)
            && notices.contains("open-relay (port 25)")
            && notices.contains(message_id),
        "{notices}"
    );

    let alice = for_addr(&mails, ALICE);
    assert_eq!(alice.len(), 1);
    let a = alice[0];
    assert!(
        a.to.contains("Alice Sato") && a.to.contains(ALICE),
        "{}",
        a.to
    );
    assert!(
        a.subject.contains("2 new, 0 resolved, 2 open"),
        "{}",
        a.subject
    );
    for needle in [
        "10.1.0.10 (mx1.lab.example.ac.jp, mail-direct)",
        "10.1.0.11 (pc11.lab.example.ac.jp, non-mail)",
        "[critical] open-relay (port 25) - new",
        "verdict: accepted at RCPT for a plainly external recipient (conclusive)",
        "tested from: 198.19.0.1",
        "C: MAIL FROM:<relaytest@relayguard.invalid>",
        "C: RCPT TO:<victim@external.example>",
        "S: 250 2.1.5 Ok",
        "Detected mail server: postfix",
        "Detected mail server: sendmail",
        "How to fix it (Postfix):",
        "smtpd_relay_restrictions = permit_mynetworks",
        "non-mail-host-listening",
        "This host should not run a mail server",
        "systemctl mask postfix",
        "sendmail_enable=\"NONE\"",
        "update-rc.d sendmail disable",
    ] {
        assert!(
            a.text.contains(needle),
            "alice's text lacks {needle:?}:\n{}",
            a.text
        );
    }
    assert!(
        !a.text.contains("EHLO relayguard.invalid"),
        "only MAIL/RCPT lines are quoted"
    );
    for other in ["10.1.0.20", "10.2.3.4", "192.0.2.50"] {
        assert!(
            !a.text.contains(other) && !a.html.contains(other),
            "alice sees {other}"
        );
    }
    assert!(
        a.html.contains("RCPT TO:&lt;victim@external.example&gt;"),
        "{}",
        a.html
    );
    assert!(!a.html.contains("<victim@"), "HTML not escaped");

    // Bob: his Exim backscatter; the CR/LF in his registered name stays inside the To header.
    let bob = for_addr(&mails, BOB);
    assert_eq!(bob.len(), 1);
    let b = bob[0];
    assert!(b.to.contains("Bob") && b.to.contains(BOB), "{}", b.to);
    assert!(
        b.text
            .contains("Hello Bob Bcc: attacker@evil.example X-Injected: yes,"),
        "{}",
        b.text
    );
    for needle in [
        "backscatter-source",
        "C: RCPT TO:<zz9q@lab.example.ac.jp>",
        "S: 250 Accepted",
        "How to fix it (Exim):",
        "verify = recipient",
        "relay_from_hosts",
    ] {
        assert!(
            b.text.contains(needle),
            "bob's text lacks {needle:?}:\n{}",
            b.text
        );
    }
    assert!(
        b.html.contains("(&lt;zz9q@lab.example.ac.jp&gt;)"),
        "{}",
        b.html
    );
    assert!(!b.text.contains("10.1.0.10"));

    // The network owner: the unregistered qmail relay in 10.2.0.0/16.
    let owner = for_addr(&mails, OWNER);
    assert_eq!(owner.len(), 1);
    let o = owner[0];
    for needle in [
        "10.2.0.0/16",
        "10.2.3.4",
        "open-relay",
        "unregistered-mta",
        "How to fix it (qmail):",
        "rcpthosts",
        "tcp.smtp",
        "systemctl mask",
    ] {
        assert!(
            o.text.contains(needle),
            "owner's text lacks {needle:?}:\n{}",
            o.text
        );
    }
    // The security team: the host in no block (an Exchange: generic text plus how to stop it).
    let soc = for_addr(&mails, SOC);
    assert_eq!(soc.len(), 1);
    assert!(
        soc[0].text.contains("192.0.2.50")
            && soc[0].text.contains("Detected mail server: exchange"),
        "{}",
        soc[0].text
    );
    assert!(
        soc[0]
            .text
            .contains("This host should not run a mail server")
    );

    let notices = sent::list_notices(&ts.store).await.unwrap();
    assert_eq!(notices.len(), 4);
    for (_, id, _) in &notices {
        assert!(
            mails.iter().any(|m| m.raw.contains(id.as_str())),
            "{id} not delivered"
        );
    }

    // Second run: nothing new, nothing sent.
    let out = run(&ts.url, smtp()).await.unwrap();
    assert_eq!(out.trim(), "nothing new to notify");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(sink.messages().len(), 4);

    // Alice fixes the relay: a sweep of 10.1.0.10 sees Postfix refuse the relay test and raise
    // no findings. The next run (in Japanese) tells only her, that it is resolved, with the
    // still-open non-mail host.
    let mut fixed = result("10.1.0.10", "postfix", json!([]));
    fixed.tests = serde_json::from_value(json!([{
        "id": "plain-external", "kind": "relay", "argument": "<victim@external.example>",
        "verdict": "refused", "reply": "554 5.7.1 <victim@external.example>: Relay access denied",
        "session": 1
    }]))
    .unwrap();
    record_sweep(&ts.store, &meta(&["10.1.0.10"]), &[fixed])
        .await
        .unwrap();
    let out = run(
        &ts.url,
        NotifyArgs {
            lang: Lang::Ja,
            ..smtp()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out.lines().filter(|l| l.starts_with("sent ")).count(),
        1,
        "{out}"
    );
    assert!(out.contains(ALICE), "{out}");
    let all = sink.wait_for(5);
    assert_eq!(all.len(), 5);
    let r = parse(&all[4]);
    assert_eq!(r.delivered_to, vec![ALICE.to_string()]);
    assert_eq!(
        r.subject,
        "[relayguard] 管理ホストのメールサーバ検査結果: 新規 0 件、解決 1 件、未対応 1 件"
    );
    assert!(
        headers(&r.raw)
            .lines()
            .any(|l| l.starts_with("Subject: [relayguard] =?utf-8?b?"))
            && headers(&r.raw).is_ascii(),
        "subject not RFC 2047 encoded:\n{}",
        headers(&r.raw)
    );
    for needle in [
        "Alice Sato 様",
        "解決済み",
        "open-relay",
        "未対応",
        "検出したメールサーバ: sendmail",
        "このホストではメールサーバを動かさないでください",
        "systemctl mask",
    ] {
        assert!(r.text.contains(needle), "lacks {needle:?}:\n{}", r.text);
    }
    assert!(r.html.contains("lang=\"ja\"") && r.html.contains("解決済み"));
    // The Postfix fix is not repeated for a host whose only finding is resolved.
    assert!(!r.text.contains("smtpd_relay_restrictions"), "{}", r.text);

    // And once more: nothing.
    let out = run(&ts.url, smtp()).await.unwrap();
    assert_eq!(out.trim(), "nothing new to notify");
    assert_eq!(sink.messages().len(), 5);

    // A week later what is still open is reminded (dry run: written, not recorded).
    let dir = tempfile::tempdir().unwrap();
    let outcome = notify(
        &ts.store,
        &NotifyOptions {
            delivery: Delivery::DryRun(dir.path().to_path_buf()),
            from: FROM.into(),
            lang: Lang::En,
            fallback: Some(SOC.into()),
            reminder_days: 7,
            now: now_unix() + 8 * 86_400,
        },
    )
    .await
    .unwrap();
    let reminded: Vec<&str> = outcome.digests.iter().map(|d| d.admin.as_str()).collect();
    assert_eq!(
        reminded,
        vec![BOB, OWNER, SOC, ALICE]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    for d in &outcome.digests {
        assert!(
            d.subject.starts_with("[relayguard] Reminder:"),
            "{}",
            d.subject
        );
    }
    assert_eq!(sent::list_notices(&ts.store).await.unwrap().len(), 5);
    assert!(!sink.log().contains("status=bounced"), "{}", sink.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_reach_a_real_postfix_once_per_news_sqlite() {
    full_flow(common::Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_reach_a_real_postfix_once_per_news_postgres() {
    full_flow(common::Kind::Postgres).await;
}

#[tokio::test]
async fn dry_run_writes_eml_files_and_records_nothing() {
    let ts = common::sqlite().await;
    seed(&ts.store).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    for _ in 0..2 {
        let out = run(
            &ts.url,
            NotifyArgs {
                dry_run: true,
                out: Some(out_dir.clone()),
                from: None,
                ..args()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            out.lines().filter(|l| l.starts_with("wrote ")).count(),
            4,
            "{out}"
        );
    }
    let files = eml_files(&out_dir);
    assert_eq!(files.len(), 4, "{files:?}");
    let alice = files
        .iter()
        .find(|f| f.contains(ALICE))
        .expect("alice's .eml");
    let m = parse(&std::fs::read(out_dir.join(alice)).unwrap());
    assert!(m.to.contains(ALICE));
    assert!(m.text.contains("C: RCPT TO:<victim@external.example>"));
    assert!(sent::list_notices(&ts.store).await.unwrap().is_empty());
}

async fn each_admin_is_written_in_their_own_language(kind: common::Kind) {
    let ts = common::open(kind).await;
    seed(&ts.store).await;
    for address in ["10.1.0.10", "10.1.0.11"] {
        let update = relayguard_registry::model::HostUpdate {
            admin_lang: Some("ja".into()),
            ..Default::default()
        };
        let h = ts.store.update_host(address, &update).await.unwrap();
        assert_eq!(h.admin_lang, Some(Lang::Ja));
    }
    let dir = tempfile::tempdir().unwrap();
    let subjects = |outcome: relayguard_registry::notify::NotifyOutcome| -> Vec<(String, String)> {
        outcome
            .digests
            .into_iter()
            .map(|d| (d.admin, d.subject))
            .collect()
    };
    let dry = |lang: Lang| NotifyOptions {
        lang,
        ..options(NotifyArgs {
            dry_run: true,
            out: Some(dir.path().to_path_buf()),
            ..args()
        })
    };
    // The run's language is English: Alice gets Japanese, everybody else English.
    let en = subjects(notify(&ts.store, &dry(Lang::En)).await.unwrap());
    assert_eq!(en.len(), 4, "{en:?}");
    for (admin, subject) in &en {
        let japanese = subject.contains("管理ホスト");
        assert_eq!(japanese, admin == ALICE, "{admin}: {subject}");
    }
    // The run's language is the default only: with --lang ja everybody is written in Japanese,
    // and an admin whose language is English stays English.
    let update = relayguard_registry::model::HostUpdate {
        admin_lang: Some("en".into()),
        ..Default::default()
    };
    ts.store.update_host("10.1.0.10", &update).await.unwrap();
    ts.store.update_host("10.1.0.11", &update).await.unwrap();
    let ja = subjects(notify(&ts.store, &dry(Lang::Ja)).await.unwrap());
    for (admin, subject) in &ja {
        let japanese = subject.contains("管理ホスト");
        assert_eq!(japanese, admin != ALICE, "{admin}: {subject}");
    }
    // A language the registry does not know is refused with a clear error.
    let bad = relayguard_registry::model::HostUpdate {
        admin_lang: Some("fr".into()),
        ..Default::default()
    };
    let err = ts.store.update_host("10.1.0.10", &bad).await.unwrap_err();
    assert!(err.to_string().contains("unknown language"), "{err}");
}

#[tokio::test]
async fn each_admin_is_written_in_their_own_language_sqlite() {
    each_admin_is_written_in_their_own_language(common::Kind::Sqlite).await;
}

#[tokio::test]
async fn each_admin_is_written_in_their_own_language_postgres() {
    each_admin_is_written_in_their_own_language(common::Kind::Postgres).await;
}

fn eml_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    v.sort();
    v
}

/// A Maildir sink offering STARTTLS with a certificate for its address from a fresh campus CA,
/// the directory holding that CA, and the CA's PEM file (for --smtp-ca).
fn tls_sink() -> (Postfix, tempfile::TempDir, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let sink = Postfix::start_maildir_sink(DOMAINS);
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![sink.addr().to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    sink.enable_tls(
        &leaf_key.serialize_pem(),
        &format!("{}{}", leaf.pem(), ca.pem()),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("campus-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    (sink, dir, ca_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_to_the_relay_trusts_a_given_campus_ca() {
    let (sink, _dir, ca_file) = tls_sink();
    let ts = common::sqlite().await;
    seed(&ts.store).await;
    let starttls = || NotifyArgs {
        smtp: Some(sink.smtp_url()),
        starttls: true,
        ..args()
    };

    // Without the campus CA the relay's certificate is not trusted: an error, nothing delivered.
    let mut out = Vec::new();
    let result = run_to(&ts.url, starttls(), &mut out).await;
    let report = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(result.is_err(), "{report}");
    assert!(
        report.contains("failed") && (report.contains("certificate") || report.contains("issuer")),
        "{report}"
    );
    assert!(sink.messages().is_empty(), "{}", sink.log());

    // With it, every digest goes out over TLS (and the failed attempt recorded nothing).
    run(
        &ts.url,
        NotifyArgs {
            smtp_ca: Some(ca_file),
            ..starttls()
        },
    )
    .await
    .unwrap();
    assert_eq!(sink.wait_for(4).len(), 4);
    assert!(
        sink.log().contains("TLS connection established from"),
        "{}",
        sink.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_auth_over_starttls() {
    let (sink, dir, ca_file) = tls_sink();
    sink.enable_sasl("notifier", "s3cret-for-tests");
    let ts = common::sqlite().await;
    seed(&ts.store).await;
    let authenticated = |password: &str| {
        let file = dir.path().join(format!("password-{}", password.len()));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        NotifyArgs {
            smtp: Some(sink.smtp_url()),
            starttls: true,
            smtp_ca: Some(ca_file.clone()),
            smtp_user: Some("notifier".into()),
            smtp_password_file: Some(file),
            ..args()
        }
    };

    // A wrong password: refused by the server, nothing delivered or recorded.
    let mut out = Vec::new();
    let result = run_to(&ts.url, authenticated("wrong"), &mut out).await;
    let report = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(result.is_err() && report.contains("failed"), "{report}");
    assert!(sink.messages().is_empty(), "{}", sink.log());

    // The right one: every digest delivered by an authenticated session over TLS.
    run(&ts.url, authenticated("s3cret-for-tests"))
        .await
        .unwrap();
    assert_eq!(sink.wait_for(4).len(), 4);
    let log = sink.log();
    assert!(log.contains("sasl_username=notifier"), "{log}");
    assert!(log.contains("TLS connection established from"), "{log}");
}
