//! The registration desk in real headless Chromium: the sign-in page, the application form, an
//! application's result and the review reminder render, with their forms and CSRF fields.
//! `cargo test -p relayguard-registry --test desk_browser -- --ignored screenshots` writes
//! docs/screenshots/desk-*.png from the same pages.
//!
//! Chromium cannot be handed a cookie on its command line, so the signed-in pages are served
//! through a layer that adds the test administrator's session cookie to every request: the
//! desk itself checks the session as it always does.

mod desk_support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Html;
use axum::routing::get;
use desk_support::{As, DeskApp, FORM, app_with, common::Kind, form, network};
use relayguard_registry::desk::Desk;
use relayguard_registry::desk::applications::{
    ApplicationChecks, AuditFinding, BoxFuture, CheckResult, DnsRequest,
};
use relayguard_registry::model::{Host, HostStatus, Lang, Role};
use relayguard_registry::review::pages::reminder;

const ALICE: &str = "alice@lab.example.ac.jp";

/// DNS consistent; the relay audit finds an open relay with a Postfix fix.
struct OpenRelay;

impl ApplicationChecks for OpenRelay {
    fn dns<'a>(&'a self, req: &'a DnsRequest) -> BoxFuture<'a, Vec<CheckResult>> {
        Box::pin(async move {
            let mut out = vec![
                CheckResult {
                    name: "forward".into(),
                    passed: true,
                    detail: format!("{} -> {}", req.hostname, req.address),
                },
                CheckResult {
                    name: "ptr".into(),
                    passed: true,
                    detail: format!("{} -> {}", req.address, req.hostname),
                },
            ];
            if let Some(d) = &req.mx_domain {
                out.push(CheckResult {
                    name: "mx".into(),
                    passed: true,
                    detail: format!("MX {d} -> 10 {}", req.hostname),
                });
            }
            out
        })
    }

    fn relay_audit<'a>(
        &'a self,
        _address: IpAddr,
        _hostname: &'a str,
        _lang: Lang,
    ) -> BoxFuture<'a, Result<Vec<AuditFinding>, String>> {
        Box::pin(async move {
            Ok(vec![AuditFinding {
                kind: "open-relay".into(),
                severity: "critical".into(),
                summary: "accepted <victim@relay-test.invalid> from <probe@relay-test.invalid>"
                    .into(),
                fix: "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination".into(),
            }])
        })
    }
}

/// The desk with an administrator signed in, an application made, and two servers on
/// loopback: one as anyone sees it, one that sends her session cookie with every request.
struct Served {
    /// As anyone sees it.
    anyone: String,
    /// Signed in as the administrator.
    signed_in: String,
    /// The application's page.
    result: String,
    _app: DeskApp,
}

async fn serve_desk() -> Served {
    let app = app_with(
        Kind::Sqlite,
        "smtp://127.0.0.1:9",
        "http://127.0.0.1",
        |d: Desk| d.with_checks(Arc::new(OpenRelay), false),
    )
    .await;
    app.store
        .add_network(&network("10.1.0.0/24", ALICE))
        .await
        .unwrap();
    let alice = app.session(ALICE).await;
    let r = app
        .call(
            "POST",
            "/desk/apply",
            As::Session(&alice),
            &[],
            FORM,
            form(&[
                ("csrf", &alice.csrf),
                ("address", "10.1.0.25"),
                ("hostname", "mx25.lab.example.ac.jp"),
                ("role", "mail-direct"),
                ("contact_name", "Alice"),
                ("contact_email", ALICE),
                ("lang", "en"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let result = r.headers[header::LOCATION].to_str().unwrap().to_string();

    let cookie = HeaderValue::from_str(&format!("rg_session={}", alice.secret)).unwrap();
    let signed_in = app.router.clone().layer(axum::middleware::map_request(
        move |mut req: axum::extract::Request| {
            let cookie = cookie.clone();
            async move {
                req.headers_mut().insert(header::COOKIE, cookie);
                req
            }
        },
    ));
    Served {
        anyone: listen(app.router.clone()).await,
        signed_in: listen(signed_in).await,
        result,
        _app: app,
    }
}

async fn listen(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The reminder mail's HTML part, served on loopback (Chromium only visits loopback).
async fn serve_reminder() -> String {
    let h = Host {
        admin_lang: None,
        address: "10.1.0.25".into(),
        hostname: "mx25.lab.example.ac.jp".into(),
        role: Role::MailDirect,
        admin_name: "Alice".into(),
        admin_email: ALICE.into(),
        note: String::new(),
        registered_on: "2026-01-10".into(),
        reviewed_on: "2026-06-10".into(),
        review_months: 6,
        status: HostStatus::Active,
    };
    let (_, _, html) = reminder(
        &h,
        "2026-12-10",
        false,
        "https://registry.lab.example.ac.jp/review/rv_example",
        Lang::En,
    );
    listen(Router::new().route("/", get(move || async move { Html(html) }))).await
}

/// The Chromium DOM of `url`, fetched off the async runtime.
async fn dom(url: String) -> String {
    tokio::task::spawn_blocking(move || relayguard_testkit::browser::dump_dom(&url))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_renders_in_chromium() {
    let s = serve_desk().await;
    let (base, result) = (&s.signed_in, &s.result);
    // The sign-in page: one e-mail field and its CSRF field, for anyone.
    let login = dom(format!("{}/login", s.anyone)).await;
    assert!(
        login.contains("type=\"email\"") && login.contains("name=\"csrf\""),
        "{login}"
    );
    // The application form, signed in: the roles the desk takes and the session's CSRF field.
    let apply = dom(format!("{base}/desk/apply")).await;
    for needle in [
        "name=\"csrf\"",
        "mail-direct",
        "mail-via-gateway",
        "internal-only",
        ALICE,
    ] {
        assert!(apply.contains(needle), "{needle} missing:\n{apply}");
    }
    // The result: needs changes, each check, the finding (escaped) and its fix.
    let page = dom(format!("{base}{result}")).await;
    for needle in [
        "needs-changes",
        "relay-audit",
        "open-relay",
        "&lt;victim@relay-test.invalid&gt;",
        "reject_unauth_destination",
        "mx25.lab.example.ac.jp -&gt; 10.1.0.25",
    ] {
        assert!(page.contains(needle), "{needle} missing:\n{page}");
    }
    // The review reminder as a mail reader shows it: the link to renew.
    let mail = dom(serve_reminder().await).await;
    assert!(
        mail.contains("https://registry.lab.example.ac.jp/review/rv_example")
            && mail.contains("mx25.lab.example.ac.jp"),
        "{mail}"
    );
}

/// Writes docs/screenshots/desk-{login,apply,result,reminder}.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots; run by hand after changing the desk's pages"]
async fn screenshots() {
    let s = serve_desk().await;
    let (anyone, base, result) = (s.anyone.clone(), s.signed_in.clone(), s.result.clone());
    let reminder = serve_reminder().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    tokio::task::spawn_blocking(move || {
        for (url, file, height) in [
            (format!("{anyone}/login"), "desk-login.png", 400),
            (format!("{base}/desk/apply"), "desk-apply.png", 900),
            (format!("{base}{result}"), "desk-result.png", 660),
            (reminder, "desk-reminder.png", 240),
        ] {
            let png = relayguard_testkit::browser::screenshot(&url, &dir.join(file), 1100, height);
            println!("{}", png.display());
        }
    })
    .await
    .unwrap();
}
