//! `/metrics`: who may read it, and that the figures it shows are the registry's, parsed back
//! with a Prometheus text-format parser. Real SQLite and real PostgreSQL; the notify failure
//! comes from a real delivery attempt to a loopback port nobody listens on.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::Kind;
use http_body_util::BodyExt;
use relayguard_core::agent_report::{
    AgentReport, CheckResult, HostIdentity, LiveFacts, SCHEMA_VERSION,
};
use relayguard_core::scan::{HostResult, PortState, SmtpInfo};
use relayguard_core::{Evidence, Finding, FindingKind, Severity};
use relayguard_registry::api::{AppState, router};
use relayguard_registry::model::{HostInput, today};
use relayguard_registry::notify::mail::SmtpOptions;
use relayguard_registry::notify::{Delivery, Lang, NotifyOptions, notify};
use relayguard_registry::{SweepMeta, record_sweep};
use tower::ServiceExt;

const ADMIN: &str = "metrics-test-admin-token-0123456789";
const METRICS: &str = "metrics-test-scrape-token-0123456789";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(metrics_show_the_registry_to_a_scraper_and_nobody_else);

fn relay(addr: &str) -> HostResult {
    let mut r = HostResult::unreachable(addr.parse().unwrap(), 25, PortState::Open);
    r.smtp = Some(SmtpInfo {
        banner: "220 mx ESMTP".into(),
        mta: "postfix".into(),
        ..Default::default()
    });
    r.findings.push(Finding {
        kind: FindingKind::OpenRelay,
        severity: Severity::Critical,
        summary: "relays".into(),
        evidence: Evidence {
            relay_strength: None,
            tests: vec!["external-sender".into()],
            transcript: vec![],
        },
    });
    r
}

fn meta(vantage: &str, started: i64, finished: i64) -> SweepMeta {
    SweepMeta {
        vantage: vantage.into(),
        targets: vec!["10.9.0.0/24".into()],
        ports: vec![25],
        started_at: started,
        finished_at: finished,
    }
}

async fn get(app: &axum::Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    match found[0].value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

async fn metrics_show_the_registry_to_a_scraper_and_nobody_else(kind: Kind) {
    let t = common::open(kind).await;
    let store = &t.store;
    store
        .add_host(
            &HostInput {
                address: "10.9.0.25".into(),
                hostname: "mx.example.ac.jp".into(),
                role: "mail-direct".into(),
                admin_name: "Mail".into(),
                admin_email: "mail@example.ac.jp".into(),
                ..Default::default()
            }
            .validate(today())
            .unwrap(),
        )
        .await
        .unwrap();
    // Two vantages; the inside one swept twice, the later sweep counts.
    record_sweep(store, &meta("outside", 1_000, 1_060), &[relay("10.9.0.25")])
        .await
        .unwrap();
    record_sweep(store, &meta("inside", 2_000, 2_010), &[relay("10.9.0.25")])
        .await
        .unwrap();
    record_sweep(
        store,
        &meta("inside", 3_000, 3_045),
        &[relay("10.9.0.25"), relay("10.9.0.26")],
    )
    .await
    .unwrap();

    // The host's agent reported once.
    let report = AgentReport {
        reappeared: Vec::new(),
        queue: None,
        schema_version: SCHEMA_VERSION,
        agent_version: "0.1.0".into(),
        generated_at: 1_000,
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
    };
    let body = serde_json::to_string(&report).unwrap();
    store
        .add_agent_report("10.9.0.25", "r1", &report, &body)
        .await
        .unwrap();
    let reported_at = relayguard_registry::model::now_unix();

    // A delivery that fails for real: nothing listens on this loopback port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let outcome = notify(
        store,
        &NotifyOptions {
            delivery: Delivery::Smtp(SmtpOptions {
                url: format!("smtp://127.0.0.1:{port}"),
                ..Default::default()
            }),
            from: "relayguard <relayguard@example.ac.jp>".into(),
            lang: Lang::En,
            fallback: Some("soc@example.ac.jp".into()),
            reminder_days: 0,
            now: 4_000,
        },
    )
    .await
    .unwrap();
    let failed = outcome.failures();
    assert!(failed >= 1, "{outcome:?}");

    let app = router(AppState {
        store: store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(vec![METRICS.to_string()]),
    });
    assert_eq!(
        get(&app, "/metrics", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&app, "/metrics", Some("not-a-token-of-anyone-here"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // A metrics token reads /metrics and nothing else.
    assert_eq!(
        get(&app, "/api/v1/hosts", Some(METRICS)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&app, "/metrics", Some(ADMIN)).await.0, StatusCode::OK);
    let (status, body) = get(&app, "/metrics", Some(METRICS)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("{e}: {body}"));
    let open = |kind: &str| {
        value(
            &scrape,
            "relayguard_open_findings",
            &[("kind", kind), ("severity", "critical")],
        )
    };
    assert_eq!(open("open-relay"), 2.0, "{body}");
    let unregistered = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "relayguard_open_findings"
                && s.labels.get("kind") == Some("unregistered-mta")
        })
        .count();
    assert_eq!(unregistered, 1, "10.9.0.26 is not registered: {body}");
    let opened = value(&scrape, "relayguard_findings_opened_total", &[]);
    assert!(opened >= 3.0, "{body}");
    assert_eq!(
        value(
            &scrape,
            "relayguard_last_sweep_finished_timestamp_seconds",
            &[("vantage", "inside")]
        ),
        3_045.0
    );
    assert_eq!(
        value(
            &scrape,
            "relayguard_last_sweep_duration_seconds",
            &[("vantage", "inside")]
        ),
        45.0
    );
    assert_eq!(
        value(
            &scrape,
            "relayguard_last_sweep_results",
            &[("vantage", "inside")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &scrape,
            "relayguard_last_sweep_duration_seconds",
            &[("vantage", "outside")]
        ),
        60.0
    );
    assert_eq!(
        value(&scrape, "relayguard_notify_failures_total", &[]),
        failed as f64
    );
    assert_eq!(
        value(&scrape, "relayguard_notify_deliveries_total", &[]),
        0.0
    );
    let age = value(
        &scrape,
        "relayguard_agent_last_report_age_seconds",
        &[("address", "10.9.0.25")],
    );
    let since = (relayguard_registry::model::now_unix() - reported_at) as f64;
    assert!((0.0..=since + 1.0).contains(&age), "{age} {since}");
}
