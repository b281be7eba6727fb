//! Overrides (accepted risks, false positives): validation, what notify leaves out and when it
//! mails the finding again, the audit log, the API and the pages. Real SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::Kind;
use http_body_util::BodyExt;
use relayguard_core::scan::{HostResult, PortState, SmtpInfo};
use relayguard_core::{Evidence, Finding, FindingKind};
use relayguard_registry::api::{AppState, router};
use relayguard_registry::model::{HostInput, format_date, now_unix, today};
use relayguard_registry::notify::{Delivery, Lang, NotifyOptions, notify};
use relayguard_registry::store::{FindingFilter, OverrideInput};
use relayguard_registry::{Error, Store, SweepMeta, record_sweep};
use tower::ServiceExt;

const ADMIN: &str = "overrides-test-admin-token-0123456789";
const ALICE: &str = "alice@lab.example.ac.jp";
const DAY: i64 = 86_400;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    overrides_are_validated_and_audited,
    an_override_keeps_a_finding_out_of_mail_until_it_lapses,
    the_api_and_pages_show_overrides,
);

/// A sweep that sees the host relaying through `vectors`, with VRFY on.
fn sweep(vectors: &[&str]) -> Vec<HostResult> {
    let mut r = HostResult::unreachable("10.2.0.25".parse().unwrap(), 25, PortState::Open);
    r.smtp = Some(SmtpInfo {
        banner: "220 mx ESMTP Postfix".into(),
        mta: "postfix".into(),
        ..Default::default()
    });
    let finding = |kind, tests: &[&str]| Finding {
        kind,
        severity: kind.default_severity(),
        summary: format!("{} seen", kind.id()),
        evidence: Evidence {
            relay_strength: None,
            tests: tests.iter().map(|t| (*t).to_string()).collect(),
            transcript: vec![],
        },
    };
    r.findings = vec![
        finding(FindingKind::OpenRelay, vectors),
        finding(FindingKind::VrfyEnabled, &["vrfy"]),
    ];
    vec![r]
}

async fn setup(kind: Kind) -> (common::TestStore, i64, i64) {
    let t = common::open(kind).await;
    t.store
        .add_host(
            &HostInput {
                address: "10.2.0.25".into(),
                hostname: "mx.lab.example.ac.jp".into(),
                role: "mail-direct".into(),
                admin_name: "Alice".into(),
                admin_email: ALICE.into(),
                ..Default::default()
            }
            .validate(today())
            .unwrap(),
        )
        .await
        .unwrap();
    record(&t.store, &["external-sender"]).await;
    let rows = t
        .store
        .list_findings(&FindingFilter::default())
        .await
        .unwrap();
    let id = |k: &str| rows.iter().find(|f| f.kind == k).unwrap().id;
    let (relay, vrfy) = (id("open-relay"), id("vrfy-enabled"));
    (t, relay, vrfy)
}

async fn record(store: &Store, vectors: &[&str]) {
    let now = now_unix();
    let meta = SweepMeta {
        vantage: "core".into(),
        targets: vec!["10.2.0.0/24".into()],
        ports: vec![25],
        started_at: now - 10,
        finished_at: now,
    };
    record_sweep(store, &meta, &sweep(vectors)).await.unwrap();
}

fn input(kind: &str, until: Option<String>) -> OverrideInput {
    OverrideInput {
        kind: kind.into(),
        reason: "lab test MTA behind its own firewall".into(),
        by: "soc@example.ac.jp".into(),
        until,
    }
}

fn in_days(n: i64) -> String {
    format_date(today() + time::Duration::days(n))
}

async fn overrides_are_validated_and_audited(kind: Kind) {
    let (t, relay, vrfy) = setup(kind).await;
    let s = &t.store;
    let invalid = |r: Result<_, Error>, needle: &str| match r {
        Err(Error::Invalid(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected an invalid-input error with {needle:?}, got {other:?}"),
    };
    invalid(
        s.set_override(relay, &input("accepted-risk", None)).await,
        "needs an expiry date",
    );
    invalid(
        s.set_override(relay, &input("accepted-risk", Some("2020-01-01".into())))
            .await,
        "already passed",
    );
    invalid(
        s.set_override(relay, &input("ignore-me", None)).await,
        "accepted-risk or false-positive",
    );
    let mut no_reason = input("false-positive", None);
    no_reason.reason = "  ".into();
    invalid(s.set_override(relay, &no_reason).await, "reason");
    assert!(matches!(
        s.set_override(999_999, &input("false-positive", None))
            .await,
        Err(Error::NotFound(_))
    ));

    let o = s
        .set_override(relay, &input("accepted-risk", Some(in_days(30))))
        .await
        .unwrap();
    assert_eq!(o.until, Some(in_days(30)));
    s.set_override(vrfy, &input("false-positive", None))
        .await
        .unwrap();
    assert!(s.clear_override(vrfy, "soc@example.ac.jp").await.unwrap());
    assert!(!s.clear_override(vrfy, "soc@example.ac.jp").await.unwrap());

    // The registration the fixture made is logged too; only the overrides' entries matter here.
    let log: Vec<_> = s
        .audit_log(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action.starts_with("override-"))
        .collect();
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("override-cleared", &*format!("finding {vrfy}")),
            ("override-set", &*format!("finding {vrfy}")),
            ("override-set", &*format!("finding {relay}")),
        ]
    );
    assert!(log.iter().all(|e| e.actor == "soc@example.ac.jp"));
    assert!(log[2].detail.contains("lab test MTA"), "{}", log[2].detail);
}

/// The text of Alice's digest in a dry run at `now`, or None when she gets none.
async fn alice_digest(store: &Store, now: i64) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let outcome = notify(
        store,
        &NotifyOptions {
            delivery: Delivery::DryRun(dir.path().to_path_buf()),
            from: "relayguard <relayguard@example.ac.jp>".into(),
            lang: Lang::En,
            fallback: Some("soc@example.ac.jp".into()),
            reminder_days: 0,
            now,
        },
    )
    .await
    .unwrap();
    let d = outcome.digests.iter().find(|d| d.admin == ALICE)?;
    Some(std::fs::read_to_string(d.result.as_ref().unwrap()).unwrap())
}

async fn an_override_keeps_a_finding_out_of_mail_until_it_lapses(kind: Kind) {
    let (t, relay, _) = setup(kind).await;
    let s = &t.store;
    let before = alice_digest(s, now_unix()).await.unwrap();
    assert!(before.contains("open-relay"), "{before}");

    s.set_override(relay, &input("accepted-risk", Some(in_days(30))))
        .await
        .unwrap();
    let held = alice_digest(s, now_unix()).await.unwrap();
    assert!(held.contains("vrfy-enabled"), "{held}");
    assert!(
        !held.contains("open-relay"),
        "an accepted risk is not mailed:\n{held}"
    );

    // The date passes: the finding is back, mailed as open again.
    let later = now_unix() + 32 * DAY;
    let expired = alice_digest(s, later).await.unwrap();
    assert!(
        expired.contains("open-relay") && expired.contains("open again"),
        "{expired}"
    );

    // A fresh override holds until the evidence changes: another relay vector accepted.
    s.set_override(relay, &input("accepted-risk", Some(in_days(90))))
        .await
        .unwrap();
    assert!(
        !alice_digest(s, now_unix())
            .await
            .unwrap()
            .contains("open-relay")
    );
    record(s, &["external-sender"]).await;
    assert!(
        !alice_digest(s, now_unix())
            .await
            .unwrap()
            .contains("open-relay"),
        "the same evidence keeps the override"
    );
    record(s, &["external-sender", "percent-hack"]).await;
    let changed = alice_digest(s, now_unix()).await.unwrap();
    assert!(
        changed.contains("open-relay") && changed.contains("open again"),
        "{changed}"
    );
    let f = s.finding(relay).await.unwrap().unwrap();
    assert_eq!(
        f.override_state(today()),
        Some(relayguard_registry::store::OverrideState::EvidenceChanged)
    );
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: bool,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn the_api_and_pages_show_overrides(kind: Kind) {
    let (t, relay, _) = setup(kind).await;
    let app = router(AppState {
        store: t.store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    });
    let path = format!("/api/v1/findings/{relay}/override");
    let body = serde_json::json!({
        "kind": "accepted-risk", "reason": "<b>lab</b> test MTA", "by": "soc", "until": in_days(10)
    })
    .to_string();
    assert_eq!(
        call(&app, "POST", &path, false, &body).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, b) = call(&app, "POST", &path, true, &body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(&app, "POST", "/api/v1/findings/x/override", true, &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    let (s, page) = call(&app, "GET", "/findings?status=open", true, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("1 of them overridden"), "{page}");
    assert!(page.contains("class=\"overridden\""), "{page}");
    assert!(
        page.contains("&lt;b&gt;lab&lt;/b&gt; test MTA"),
        "escaped reason: {page}"
    );
    assert!(!page.contains("<b>lab</b>"));

    let (s, log) = call(&app, "GET", "/api/v1/audit-log", true, "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(log.contains("override-set"), "{log}");
    let clear = serde_json::json!({"by": "soc"}).to_string();
    assert_eq!(
        call(&app, "DELETE", &path, true, &clear).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "DELETE", &path, true, &clear).await.0,
        StatusCode::NOT_FOUND
    );
}
