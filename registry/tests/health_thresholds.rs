//! Per-host queue health thresholds: stored and audited, used by the findings an agent report
//! opens, and set through the API. Real SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::Kind;
use http_body_util::BodyExt;
use relayguard_core::agent_report::{
    AgentReport, CheckResult, HostIdentity, LiveFacts, Mta, QueueHealth, SCHEMA_VERSION,
};
use relayguard_registry::api::{AppState, router};
use relayguard_registry::model::{HostInput, today};
use relayguard_registry::store::{FindingFilter, FindingStatus, ThresholdSettings};
use relayguard_registry::{Error, Store};
use tower::ServiceExt;

const ADMIN: &str = "health-thresholds-admin-token-0123456789";
const MX: &str = "10.3.0.25";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    thresholds_are_stored_validated_and_audited,
    reports_are_judged_by_the_hosts_thresholds,
    the_api_sets_and_shows_thresholds,
);

async fn register(s: &Store) {
    s.add_host(
        &HostInput {
            address: MX.into(),
            hostname: "mx.lab.example.ac.jp".into(),
            role: "mail-direct".into(),
            admin_name: "Alice".into(),
            admin_email: "alice@lab.example.ac.jp".into(),
            ..Default::default()
        }
        .validate(today())
        .unwrap(),
    )
    .await
    .unwrap();
}

/// A report of a Postfix with `messages` queued, `null_sender` of them bounces.
fn report(at: u64, messages: u64, null_sender: u64) -> AgentReport {
    AgentReport {
        schema_version: SCHEMA_VERSION,
        agent_version: "0.1.0".into(),
        generated_at: at,
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
            mta: Mta::Postfix,
            source: "postqueue -j".into(),
            queues: [("deferred".to_string(), messages)].into_iter().collect(),
            messages,
            null_sender,
            oldest_age_secs: Some(600),
            bounces_since_last: None,
        }),
    }
}

/// Sends a report and returns the open queue health findings' kinds, sorted.
async fn send(s: &Store, id: &str, r: &AgentReport) -> Vec<String> {
    s.add_agent_report(MX, id, r, &serde_json::to_string(r).unwrap())
        .await
        .unwrap();
    let mut open: Vec<String> = s
        .list_findings(&FindingFilter {
            address: Some(MX.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.status == FindingStatus::Open)
        .map(|f| f.kind)
        .collect();
    open.sort();
    open
}

async fn thresholds_are_stored_validated_and_audited(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    assert!(matches!(
        s.health_thresholds(MX).await,
        Err(Error::NotFound(_))
    ));
    register(s).await;
    let none = s.health_thresholds(MX).await.unwrap();
    assert_eq!(none, ThresholdSettings::default());
    assert_eq!(none.effective().queue_backlog_threshold, 500);
    assert_eq!(none.effective().bounce_burst_threshold, 100);

    let set = ThresholdSettings {
        queue_backlog_threshold: Some(2000),
        bounce_burst_threshold: None,
    };
    s.set_health_thresholds(MX, &set, "soc").await.unwrap();
    let back = s.health_thresholds(MX).await.unwrap();
    assert_eq!(back, set);
    assert_eq!(back.effective().queue_backlog_threshold, 2000);
    assert_eq!(back.effective().bounce_burst_threshold, 100);

    // 0 would open the finding on an empty queue; beyond i64 the databases cannot store it.
    for bad in [0, u64::MAX] {
        let e = s
            .set_health_thresholds(
                MX,
                &ThresholdSettings {
                    bounce_burst_threshold: Some(bad),
                    ..set
                },
                "soc",
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
    assert_eq!(s.health_thresholds(MX).await.unwrap(), set, "unchanged");

    // Both back to the default.
    s.set_health_thresholds(MX, &ThresholdSettings::default(), "bob")
        .await
        .unwrap();
    assert_eq!(
        s.health_thresholds(MX).await.unwrap(),
        ThresholdSettings::default()
    );
    // The registration's own creation is in the log too; the two changes are the newest.
    let log: Vec<_> = s
        .audit_log(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "health-thresholds-set")
        .collect();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0].actor.as_str(), log[0].action.as_str()),
        ("bob", "health-thresholds-set")
    );
    assert!(log[1].detail.contains("2000"), "{}", log[1].detail);
    // The registration's removal takes its thresholds along.
    s.set_health_thresholds(MX, &set, "soc").await.unwrap();
    s.remove_host(MX).await.unwrap();
    register(s).await;
    assert_eq!(
        s.health_thresholds(MX).await.unwrap(),
        ThresholdSettings::default()
    );
}

async fn reports_are_judged_by_the_hosts_thresholds(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    register(s).await;
    // Defaults: 600 queued is a backlog, 60 bounces is not a burst.
    assert_eq!(
        send(s, "r1", &report(1_000, 600, 60)).await,
        ["mail-queue-backlog"]
    );
    // This gateway carries more mail, and any bounce wave of 50 matters.
    s.set_health_thresholds(
        MX,
        &ThresholdSettings {
            queue_backlog_threshold: Some(1000),
            bounce_burst_threshold: Some(50),
        },
        "soc",
    )
    .await
    .unwrap();
    assert_eq!(
        send(s, "r2", &report(2_000, 600, 60)).await,
        ["bounce-burst"],
        "600 is under the host's 1000: resolved; 60 is over its 50: opened"
    );
    let f = s
        .list_findings(&FindingFilter {
            address: Some(MX.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let burst = f.iter().find(|f| f.kind == "bounce-burst").unwrap();
    assert!(
        burst.summary.contains("(threshold 50;"),
        "{}",
        burst.summary
    );
    assert_eq!(
        send(s, "r3", &report(3_000, 1000, 49)).await,
        ["mail-queue-backlog"],
        "at the threshold it opens"
    );
    // Back to the defaults: 1000 is still over 500, 49 still under 100.
    s.set_health_thresholds(MX, &ThresholdSettings::default(), "soc")
        .await
        .unwrap();
    assert_eq!(
        send(s, "r4", &report(4_000, 499, 99)).await,
        Vec::<String>::new()
    );
}

async fn call(app: &axum::Router, method: &str, path: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn the_api_sets_and_shows_thresholds(kind: Kind) {
    let t = common::open(kind).await;
    register(&t.store).await;
    let app = router(AppState {
        store: t.store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    });
    let path = format!("/api/v1/hosts/{MX}/health-thresholds");
    let (st, body) = call(&app, "GET", &path, "").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["set"]["queue_backlog_threshold"], serde_json::Value::Null);
    assert_eq!(v["effective"]["queue_backlog_threshold"], 500);

    let (st, body) = call(
        &app,
        "PUT",
        &path,
        r#"{"bounce_burst_threshold": 20, "by": "soc"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["effective"]["bounce_burst_threshold"], 20);
    assert_eq!(v["effective"]["queue_backlog_threshold"], 500);
    assert_eq!(
        t.store
            .health_thresholds(MX)
            .await
            .unwrap()
            .bounce_burst_threshold,
        Some(20)
    );

    let (st, body) = call(
        &app,
        "PUT",
        &path,
        r#"{"bounce_burst_threshold": 0, "by": "soc"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("bounce_burst_threshold"), "{body}");
    let (st, _) = call(&app, "PUT", &path, r#"{"queue_backlog": 5, "by": "x"}"#).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "unknown field");
    let (st, _) = call(&app, "GET", "/api/v1/hosts/10.3.0.99/health-thresholds", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
