//! The six-monthly review end to end: reminders delivered through a real Postfix into a Maildir
//! (parsed back), once per due date; an expired registration out of the exports with
//! `registration-expired` open; its renewal link followed against the real HTTP server, which
//! moves the due date and brings the registration back into the exports. Where the server runs
//! the desk's checks, a renewal is checked as an application is.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use mailparse::{MailHeaderMap, ParsedMail};
use relayguard_registry::Store;
use relayguard_registry::api::{AppState, router};
use relayguard_registry::desk::applications::{
    ApplicationChecks, AuditFinding, BoxFuture, CheckResult, DnsRequest,
};
use relayguard_registry::desk::{Desk, DeskConfig};
use relayguard_registry::export::allowlist_plain;
use relayguard_registry::model::{
    Host, HostStatus, Lang, Role, add_months, format_date, now_unix, today,
};
use relayguard_registry::notify::Delivery;
use relayguard_registry::notify::mail::SmtpOptions;
use relayguard_registry::review::{ReviewOptions, run_reviews};
use relayguard_registry::store::{FindingFilter, FindingStatus};
use relayguard_testkit::Postfix;

const DOMAIN: &str = "lab.example.ac.jp";
const SOON: &str = "10.9.0.1";
const LATER: &str = "10.9.0.2";
const OVER: &str = "10.9.0.3";

fn host(address: &str, name: &str, admin: &str, reviewed_on: time::Date) -> Host {
    Host {
        admin_lang: None,
        address: address.into(),
        hostname: name.into(),
        role: Role::MailDirect,
        admin_name: "Admin".into(),
        admin_email: format!("{admin}@{DOMAIN}"),
        note: String::new(),
        registered_on: "2020-01-01".into(),
        reviewed_on: format_date(reviewed_on),
        review_months: 6,
        status: HostStatus::Active,
    }
}

/// Serves the registry's real router on a loopback port; its base URL.
async fn serve(store: Store) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = router(AppState {
        store,
        admin_tokens: Arc::new(Vec::new()),
        metrics_tokens: Arc::new(Vec::new()),
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn options(delivery: Delivery, base_url: &str) -> ReviewOptions {
    ReviewOptions {
        delivery,
        from: format!("relayguard <soc@{DOMAIN}>"),
        base_url: base_url.into(),
        remind_days: 30,
        lang: Lang::En,
        today: today(),
        now: now_unix(),
    }
}

struct Mail {
    to: String,
    subject: String,
    text: String,
}

fn parse(raw: &[u8]) -> Mail {
    let m = mailparse::parse_mail(raw).unwrap();
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
    Mail {
        to: m.headers.get_first_value("To").unwrap_or_default(),
        subject: m.headers.get_first_value("Subject").unwrap_or_default(),
        text: part(&m, "text/plain"),
    }
}

async fn allowlist(store: &Store) -> String {
    allowlist_plain(&store.list_hosts().await.unwrap())
}

async fn open_expired(store: &Store) -> Vec<String> {
    store.refresh_registrations().await.unwrap();
    store
        .list_findings(&FindingFilter {
            status: Some(FindingStatus::Open),
            ..FindingFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == "registration-expired")
        .map(|f| f.address)
        .collect()
}

async fn flow(kind: common::Kind) {
    let sink = Postfix::start_maildir_sink(&[DOMAIN]);
    let ts = common::open(kind).await;
    let store = ts.store.clone();
    let t = today();
    // Due in about ten days, in six months, and a month ago.
    let soon = add_months(t, -6) + time::Duration::days(10);
    store
        .add_host(&host(SOON, "soon.lab.example.ac.jp", "soon", soon))
        .await
        .unwrap();
    store
        .add_host(&host(LATER, "later.lab.example.ac.jp", "later", t))
        .await
        .unwrap();
    store
        .add_host(&host(
            OVER,
            "over.lab.example.ac.jp",
            "over",
            add_months(t, -7),
        ))
        .await
        .unwrap();
    let base = serve(store.clone()).await;
    let smtp = || {
        Delivery::Smtp(SmtpOptions {
            url: sink.smtp_url(),
            ..SmtpOptions::default()
        })
    };

    // The expired registration is out of the pass-list, with its finding.
    assert_eq!(allowlist(&store).await, format!("{SOON}\n{LATER}\n"));
    assert_eq!(open_expired(&store).await, [OVER]);

    let outcome = run_reviews(&store, &options(smtp(), &base)).await.unwrap();
    let lines = outcome.lines().join("\n");
    assert_eq!(outcome.reminders.len(), 2, "{lines}");
    assert_eq!(outcome.failures(), 0, "{lines}");
    let mails: Vec<Mail> = sink.wait_for(2).iter().map(|r| parse(r)).collect();
    assert_eq!(mails.len(), 2);
    let to_over = mails
        .iter()
        .find(|m| m.to.contains(&format!("over@{DOMAIN}")))
        .expect("a reminder to over@");
    let to_soon = mails
        .iter()
        .find(|m| m.to.contains(&format!("soon@{DOMAIN}")))
        .expect("a reminder to soon@");
    let due_soon = format_date(add_months(soon, 6));
    assert!(
        to_soon.subject.contains(&format!("review due {due_soon}")),
        "{}",
        to_soon.subject
    );
    assert!(
        to_over.subject.contains("overdue since") && to_over.text.contains("dropped out"),
        "{}\n{}",
        to_over.subject,
        to_over.text
    );

    // Once per due date: a second run sends nothing.
    let again = run_reviews(&store, &options(smtp(), &base)).await.unwrap();
    assert!(again.reminders.is_empty(), "{:?}", again.lines());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 2);

    // Follow the link in the expired registration's reminder against the real server.
    let link = to_over
        .text
        .lines()
        .find(|l| l.starts_with(&format!("{base}/review/")))
        .unwrap_or_else(|| panic!("no link in:\n{}", to_over.text))
        .trim()
        .to_string();
    let http = reqwest::Client::new();
    for _ in 0..2 {
        // Looking (twice: a link scanner may fetch it first) changes nothing.
        let r = http.get(&link).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("still needed") && body.contains("over.lab.example.ac.jp"),
            "{body}"
        );
    }
    assert_eq!(open_expired(&store).await, [OVER]);

    let r = http.post(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let new_due = format_date(add_months(t, 6));
    assert!(
        body.contains("Registration renewed") && body.contains(&new_due),
        "{body}"
    );
    let renewed = store.get_host(OVER).await.unwrap().unwrap();
    assert_eq!(renewed.reviewed_on, format_date(t));
    assert_eq!(format_date(renewed.review_due().unwrap()), new_due);
    assert_eq!(
        allowlist(&store).await,
        format!("{SOON}\n{LATER}\n{OVER}\n")
    );
    assert!(open_expired(&store).await.is_empty());

    // Single use; unknown and expired links say so.
    let r = http.post(&link).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("already been used"));
    let r = http
        .get(format!("{base}/review/rv_0000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    store
        .add_review_token(
            "rv_stale",
            SOON,
            &due_soon,
            now_unix() - 100,
            now_unix() - 1,
        )
        .await
        .unwrap();
    let r = http
        .post(format!("{base}/review/rv_stale"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(
        store.get_host(SOON).await.unwrap().unwrap().reviewed_on,
        format_date(soon)
    );

    // The renewed registration is not reminded again for its new due date.
    let after = run_reviews(&store, &options(smtp(), &base)).await.unwrap();
    assert!(after.reminders.is_empty(), "{:?}", after.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_expiry_and_renewal_sqlite() {
    flow(common::Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_expiry_and_renewal_postgres() {
    flow(common::Kind::Postgres).await;
}

#[tokio::test]
async fn a_dry_run_writes_eml_files_and_records_nothing() {
    let ts = common::sqlite().await;
    let t = today();
    ts.store
        .add_host(&host(
            OVER,
            "over.lab.example.ac.jp",
            "over",
            add_months(t, -7),
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = options(
        Delivery::DryRun(dir.path().to_path_buf()),
        "https://registry.example.ac.jp",
    );
    for _ in 0..2 {
        let out = run_reviews(&ts.store, &opts).await.unwrap();
        assert_eq!(out.reminders.len(), 1, "{:?}", out.lines());
        assert!(
            out.lines()[0].starts_with("wrote 10.9.0.3"),
            "{:?}",
            out.lines()
        );
    }
    assert!(
        !ts.store
            .reminder_sent(OVER, &format_date(add_months(add_months(t, -7), 6)))
            .await
            .unwrap()
    );
    let e = run_reviews(
        &ts.store,
        &options(
            Delivery::DryRun(dir.path().to_path_buf()),
            "registry.example",
        ),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--base-url"), "{e}");
}

/// Migration 0046 as an upgrade meets it: registrations already past (or near) their review
/// get six months from the migration, and the dates replaced are kept; later ones keep theirs.
async fn upgrade(kind: common::Kind) {
    let ts = common::open(kind).await;
    let t = today();
    let mut long_ago = host(OVER, "over.lab.example.ac.jp", "over", add_months(t, -30));
    long_ago.review_months = 6;
    let mut yearly_near = host(SOON, "soon.lab.example.ac.jp", "soon", add_months(t, -10));
    yearly_near.review_months = 12;
    let mut yearly_fresh = host(LATER, "later.lab.example.ac.jp", "later", t);
    yearly_fresh.review_months = 12;
    for h in [&long_ago, &yearly_near, &yearly_fresh] {
        ts.store.add_host(h).await.unwrap();
    }
    assert_eq!(allowlist(&ts.store).await, format!("{SOON}\n{LATER}\n"));
    // Undo the migration the fresh database got, then reopen: it runs as on an upgrade.
    sqlx::raw_sql(
        "DELETE FROM relayguard_schema WHERE version = 46; DROP TABLE review_dates_before_0046;",
    )
    .execute(ts.store.pool())
    .await
    .unwrap();
    let store = Store::open(&ts.url).await.unwrap();
    let six = add_months(t, 6);
    for (address, months) in [(OVER, 6), (SOON, 12)] {
        let h = store.get_host(address).await.unwrap().unwrap();
        assert_eq!(h.review_months, months);
        let due = h.review_due().unwrap();
        // The databases' month arithmetic may land a day or three past ours at a month's end.
        assert!(
            due >= six && due <= six + time::Duration::days(3),
            "{address}: due {due}, expected about {six}"
        );
    }
    assert_eq!(
        store.get_host(LATER).await.unwrap().unwrap().reviewed_on,
        format_date(t)
    );
    let kept: Vec<(String, String)> = sqlx::query_as(
        "SELECT address, reviewed_on FROM review_dates_before_0046 ORDER BY address",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        kept,
        [
            (SOON.to_string(), format_date(add_months(t, -10))),
            (OVER.to_string(), format_date(add_months(t, -30))),
        ]
    );
    assert_eq!(
        allowlist(&store).await,
        format!("{SOON}\n{LATER}\n{OVER}\n")
    );
}

#[tokio::test]
async fn an_upgrade_gives_registrations_six_months_sqlite() {
    upgrade(common::Kind::Sqlite).await;
}

#[tokio::test]
async fn an_upgrade_gives_registrations_six_months_postgres() {
    upgrade(common::Kind::Postgres).await;
}

/// Checks scripted for the renewal test: DNS always consistent; the relay audit finds an open
/// relay until `fixed` is set.
struct RelayUntilFixed {
    fixed: std::sync::atomic::AtomicBool,
    audits: std::sync::atomic::AtomicU32,
}

impl ApplicationChecks for RelayUntilFixed {
    fn dns<'a>(&'a self, req: &'a DnsRequest) -> BoxFuture<'a, Vec<CheckResult>> {
        Box::pin(async move {
            vec![CheckResult {
                name: "forward".into(),
                passed: true,
                detail: format!("{} -> {}", req.hostname, req.address),
            }]
        })
    }

    fn relay_audit<'a>(
        &'a self,
        _address: std::net::IpAddr,
        _hostname: &'a str,
        _lang: Lang,
    ) -> BoxFuture<'a, Result<Vec<AuditFinding>, String>> {
        Box::pin(async move {
            self.audits
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.fixed.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(Vec::new());
            }
            Ok(vec![AuditFinding {
                kind: "open-relay".into(),
                severity: "critical".into(),
                summary: "accepted <victim@ext.example> from <probe@ext.example> <&>".into(),
                fix: String::new(),
            }])
        })
    }
}

async fn renewal_is_checked(kind: common::Kind) {
    let ts = common::open(kind).await;
    let store = ts.store.clone();
    let t = today();
    store
        .add_host(&host(
            OVER,
            "over.lab.example.ac.jp",
            "over",
            add_months(t, -7),
        ))
        .await
        .unwrap();
    let due = format_date(add_months(t, -1));
    store
        .add_review_token("rv_check", OVER, &due, now_unix(), now_unix() + 3600)
        .await
        .unwrap();
    let checks = Arc::new(RelayUntilFixed {
        fixed: false.into(),
        audits: 0.into(),
    });
    let desk = Desk::new(&DeskConfig {
        base_url: "http://127.0.0.1".into(),
        from: format!("registry@{DOMAIN}"),
        smtp: SmtpOptions {
            url: "smtp://127.0.0.1:1".into(),
            ..SmtpOptions::default()
        },
    })
    .unwrap()
    .with_checks(checks.clone(), false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = router(AppState {
        store: store.clone(),
        admin_tokens: Arc::new(Vec::new()),
        metrics_tokens: Arc::new(Vec::new()),
    })
    .layer(axum::Extension(Arc::new(desk)));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let link = format!("http://{addr}/review/rv_check");
    let http = reqwest::Client::new();

    // Still an open relay: not renewed, the page says why (escaped), the link stays usable.
    let r = http.post(&link).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Not renewed") && body.contains("relay-audit") && body.contains("open-relay"),
        "{body}"
    );
    assert!(
        body.contains("&lt;&amp;&gt;") && !body.contains("<&>"),
        "{body}"
    );
    let h = store.get_host(OVER).await.unwrap().unwrap();
    assert_eq!(h.reviewed_on, format_date(add_months(t, -7)));
    assert_eq!(open_expired(&store).await, [OVER]);
    assert_eq!(allowlist(&store).await, "");

    // Fixed: the same link renews.
    checks
        .fixed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = http.post(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Registration renewed"));
    let h = store.get_host(OVER).await.unwrap().unwrap();
    assert_eq!(h.reviewed_on, format_date(t));
    assert!(open_expired(&store).await.is_empty());
    assert_eq!(allowlist(&store).await, format!("{OVER}\n"));
    assert_eq!(checks.audits.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_is_checked_as_an_application_is_sqlite() {
    renewal_is_checked(common::Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_is_checked_as_an_application_is_postgres() {
    renewal_is_checked(common::Kind::Postgres).await;
}
