//! HTTP API: every endpoint for 401/403, bad input (4xx with a clear message), never a 500.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Kind;
use http_body_util::BodyExt;
use relayguard_core::agent_report::{
    AgentReport, CheckResult, HostIdentity, LiveFacts, SCHEMA_VERSION,
};
use relayguard_registry::api::{AppState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789abcdef";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    auth_on_every_endpoint,
    hosts_and_bad_input,
    networks_sweeps_findings_exports,
    agent_endpoints
);

struct App {
    router: Router,
    _t: common::TestStore,
}

async fn app(kind: Kind) -> App {
    let t = common::open(kind).await;
    let router = router(AppState {
        store: t.store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    });
    App { router, _t: t }
}

impl App {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> (StatusCode, String) {
        self.call_h(method, path, token, body, &[]).await
    }

    async fn call_h(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.into())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            status.as_u16() < 500,
            "{method} {path} answered {status}: {text}"
        );
        (status, text)
    }

    async fn ok_json(&self, method: &str, path: &str, body: impl Into<Vec<u8>>) -> Value {
        let (s, b) = self.call(method, path, Some(ADMIN), body).await;
        assert!(s.is_success(), "{method} {path}: {s} {b}");
        serde_json::from_str(&b).unwrap_or(Value::Null)
    }
}

fn host(addr: &str, role: &str) -> String {
    json!({ "address": addr, "hostname": "h.example.ac.jp", "role": role, "admin_name": "A",
            "admin_email": "a@example.ac.jp" })
    .to_string()
}

fn report() -> AgentReport {
    AgentReport {
        schema_version: SCHEMA_VERSION,
        agent_version: "0.1.0".into(),
        generated_at: 1,
        host: HostIdentity {
            hostname: "pc".into(),
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
        queue: None,
    }
}

/// Every admin endpoint, with a body valid enough to get past parsing.
fn admin_endpoints() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("GET", "/api/v1/hosts", String::new()),
        ("POST", "/api/v1/hosts", host("192.0.2.77", "non-mail")),
        (
            "POST",
            "/api/v1/hosts/import",
            "address,hostname,role,admin_name,admin_email\n".into(),
        ),
        ("GET", "/api/v1/hosts/192.0.2.1", String::new()),
        ("PATCH", "/api/v1/hosts/192.0.2.1", "{}".into()),
        ("DELETE", "/api/v1/hosts/192.0.2.1", String::new()),
        ("POST", "/api/v1/hosts/192.0.2.1/agent-token", String::new()),
        ("GET", "/api/v1/hosts/192.0.2.1/reports", String::new()),
        ("GET", "/api/v1/networks", String::new()),
        (
            "POST",
            "/api/v1/networks",
            json!({"cidr":"10.9.0.0/16","owner_name":"O","owner_email":"o@x.example"}).to_string(),
        ),
        ("DELETE", "/api/v1/networks/10.9.0.0/16", String::new()),
        ("GET", "/api/v1/sweeps", String::new()),
        (
            "POST",
            "/api/v1/sweeps",
            json!({"meta":{"vantage":"v","started_at":1,"finished_at":2},"results":[]}).to_string(),
        ),
        ("GET", "/api/v1/sweeps/1", String::new()),
        ("GET", "/api/v1/findings", String::new()),
        ("GET", "/api/v1/export/hosts.csv", String::new()),
        ("GET", "/api/v1/export/allowlist.nft", String::new()),
        ("GET", "/hosts", String::new()),
        ("GET", "/hosts/192.0.2.1", String::new()),
        ("GET", "/findings", String::new()),
        ("GET", "/sweeps", String::new()),
    ]
}

async fn auth_on_every_endpoint(kind: Kind) {
    let a = app(kind).await;
    assert_eq!(
        a.call("GET", "/api/v1/health", None, "").await.0,
        StatusCode::OK
    );
    a.ok_json("POST", "/api/v1/hosts", host("192.0.2.1", "non-mail"))
        .await;
    let agent = a
        .ok_json("POST", "/api/v1/hosts/192.0.2.1/agent-token", "")
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    for (m, p, body) in admin_endpoints() {
        let (s, b) = a.call(m, p, None, body.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p} without token: {b}");
        assert!(b.contains("token"), "{b}");
        assert_eq!(
            a.call(m, p, Some("wrong-token-wrong-token"), body.clone())
                .await
                .0,
            StatusCode::UNAUTHORIZED,
            "{m} {p}"
        );
        assert_eq!(
            a.call(m, p, Some(&agent), body.clone()).await.0,
            StatusCode::FORBIDDEN,
            "{m} {p} with agent token"
        );
    }
    // Malformed Authorization headers are 401, not 400 or 500.
    for h in ["Bearer", "Basic !!!", "Token abc", "Bearer    "] {
        let (s, _) = a
            .call_h("GET", "/api/v1/hosts", None, "", &[("authorization", h)])
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{h}");
    }
    // Pages accept HTTP Basic with the admin token as password (base64 of "admin:TOKEN").
    let basic = format!("Basic {}", b64(&format!("admin:{ADMIN}")));
    assert_eq!(
        a.call_h("GET", "/hosts", None, "", &[("authorization", &basic)])
            .await
            .0,
        StatusCode::OK
    );
    // Agent endpoints: no token / wrong token 401, admin token 403, other host's token 403.
    let rep = serde_json::to_string(&report()).unwrap();
    for (m, p, body) in [
        ("GET", "/api/v1/agent/192.0.2.1/role", String::new()),
        ("POST", "/api/v1/agent/192.0.2.1/reports", rep),
    ] {
        assert_eq!(
            a.call(m, p, None, body.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.call(m, p, Some("rga_nope"), body.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.call(m, p, Some(ADMIN), body.clone()).await.0,
            StatusCode::FORBIDDEN
        );
        let other = p.replace("192.0.2.1", "192.0.2.2");
        assert_eq!(
            a.call(m, &other, Some(&agent), body.clone()).await.0,
            StatusCode::FORBIDDEN
        );
    }
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn hosts_and_bad_input(kind: Kind) {
    let a = app(kind).await;
    let bad = |s: (StatusCode, String), code: StatusCode, needle: &str| {
        assert_eq!(s.0, code, "{}", s.1);
        assert!(s.1.contains(needle), "expected {needle:?} in {}", s.1);
    };
    bad(
        a.call("POST", "/api/v1/hosts", Some(ADMIN), "{not json")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid JSON body",
    );
    bad(
        a.call(
            "POST",
            "/api/v1/hosts",
            Some(ADMIN),
            host("192.0.2.300", "non-mail"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid IP address",
    );
    bad(
        a.call(
            "POST",
            "/api/v1/hosts",
            Some(ADMIN),
            host("192.0.2.3", "relay"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid role",
    );
    let e = json!({"address":"192.0.2.3","hostname":"h.example","role":"non-mail","admin_name":"A","admin_email":"nobody"});
    bad(
        a.call("POST", "/api/v1/hosts", Some(ADMIN), e.to_string())
            .await,
        StatusCode::BAD_REQUEST,
        "invalid e-mail",
    );
    let e = json!({"address":"192.0.2.3","hostname":"h.example","role":"non-mail","admin_name":"A","admin_email":"a@b.example","colour":"red"});
    bad(
        a.call("POST", "/api/v1/hosts", Some(ADMIN), e.to_string())
            .await,
        StatusCode::BAD_REQUEST,
        "unknown field",
    );
    let created = a
        .ok_json("POST", "/api/v1/hosts", host("2001:db8::1", "mail-direct"))
        .await;
    assert_eq!(created["status"], "active");
    bad(
        a.call(
            "POST",
            "/api/v1/hosts",
            Some(ADMIN),
            host("2001:DB8::0:1", "non-mail"),
        )
        .await,
        StatusCode::CONFLICT,
        "already registered",
    );
    let h = a.ok_json("GET", "/api/v1/hosts/2001:db8::1", "").await;
    assert_eq!(h["role"], "mail-direct");
    assert!(h["review_due"].is_string());
    bad(
        a.call("GET", "/api/v1/hosts/nope", Some(ADMIN), "").await,
        StatusCode::BAD_REQUEST,
        "invalid IP address",
    );
    bad(
        a.call("GET", "/api/v1/hosts/192.0.2.99", Some(ADMIN), "")
            .await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    let u = a
        .ok_json(
            "PATCH",
            "/api/v1/hosts/2001:db8::1",
            json!({"note":"<script>"}).to_string(),
        )
        .await;
    assert_eq!(u["note"], "<script>");
    bad(
        a.call(
            "PATCH",
            "/api/v1/hosts/2001:db8::1",
            Some(ADMIN),
            r#"{"review_months":0}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "review interval",
    );
    bad(
        a.call(
            "PATCH",
            "/api/v1/hosts/2001:db8::1",
            Some(ADMIN),
            r#"{"role":5}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid JSON",
    );
    let csv = "address,hostname,role,admin_name,admin_email\n192.0.2.5,a.example,mail-direct,A,a@x.example\n192.0.2.6,b,weird,B,b@x.example\n";
    bad(
        a.call("POST", "/api/v1/hosts/import", Some(ADMIN), csv)
            .await,
        StatusCode::BAD_REQUEST,
        "line 3: invalid role",
    );
    bad(
        a.call(
            "POST",
            "/api/v1/hosts/import",
            Some(ADMIN),
            &b"\xff\xfe"[..],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "CSV",
    );
    let csv = "address,hostname,role,admin_name,admin_email\n192.0.2.5,a.example,mail-direct,A,a@x.example\n";
    assert_eq!(
        a.ok_json("POST", "/api/v1/hosts/import", csv).await["imported"],
        1
    );
    bad(
        a.call("POST", "/api/v1/hosts/import", Some(ADMIN), csv)
            .await,
        StatusCode::CONFLICT,
        "already registered",
    );
    assert_eq!(
        a.ok_json("GET", "/api/v1/hosts", "")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        a.call("DELETE", "/api/v1/hosts/192.0.2.5", Some(ADMIN), "")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.call("DELETE", "/api/v1/hosts/192.0.2.5", Some(ADMIN), "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    bad(
        a.call("GET", "/api/v1/nothing-here", Some(ADMIN), "").await,
        StatusCode::NOT_FOUND,
        "endpoint",
    );
}

async fn networks_sweeps_findings_exports(kind: Kind) {
    let a = app(kind).await;
    let net =
        json!({"cidr":"10.1.0.0/16","owner_name":"Lab","owner_email":"lab@x.example"}).to_string();
    a.ok_json("POST", "/api/v1/networks", net.clone()).await;
    assert_eq!(
        a.call("POST", "/api/v1/networks", Some(ADMIN), net).await.0,
        StatusCode::CONFLICT
    );
    let (s, b) = a
        .call(
            "POST",
            "/api/v1/networks",
            Some(ADMIN),
            json!({"cidr":"10.1.0.0/40","owner_name":"L","owner_email":"l@x.example"}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("invalid CIDR"), "{b}");
    assert_eq!(
        a.ok_json("GET", "/api/v1/networks", "").await[0]["cidr"],
        "10.1.0.0/16"
    );

    a.ok_json("POST", "/api/v1/hosts", host("10.1.0.25", "mail-direct"))
        .await;
    a.ok_json("POST", "/api/v1/hosts", host("10.1.0.26", "non-mail"))
        .await;
    let result = json!({"address":"10.1.0.99","port":25,"source":"198.19.0.1","state":"open","smtp":{"banner":"220 <x>","mta":"postfix","starttls":false},"elapsed_ms":3});
    let up = json!({"meta":{"vantage":"core","targets":["10.1.0.0/24"],"started_at":10,"finished_at":20},"results":[result]});
    let sw = a.ok_json("POST", "/api/v1/sweeps", up.to_string()).await;
    assert_eq!(sw["smtp_listeners"], 1);
    let id = sw["id"].as_i64().unwrap();
    assert_eq!(
        a.ok_json("GET", &format!("/api/v1/sweeps/{id}"), "").await["vantage"],
        "core"
    );
    for (body, needle) in [
        (
            json!({"meta":{"vantage":"v","started_at":5,"finished_at":1}}),
            "before",
        ),
        (
            json!({"meta":{"vantage":"","started_at":1,"finished_at":1}}),
            "vantage",
        ),
        (
            json!({"meta":{"vantage":"v","started_at":1,"finished_at":2},"results":[{"address":"x"}]}),
            "invalid JSON",
        ),
        (json!({"results":[]}), "missing field"),
    ] {
        let (s, b) = a
            .call("POST", "/api/v1/sweeps", Some(ADMIN), body.to_string())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b.contains(needle), "{needle}: {b}");
    }
    assert_eq!(
        a.call("GET", "/api/v1/sweeps/abc", Some(ADMIN), "").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        a.call("GET", "/api/v1/sweeps/999", Some(ADMIN), "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.ok_json("GET", "/api/v1/sweeps", "")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let f = a
        .ok_json(
            "GET",
            "/api/v1/findings?status=open&severity=medium&admin=lab@x.example",
            "",
        )
        .await;
    assert_eq!(f.as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f[0]["kind"], "unregistered-mta");
    for q in [
        "severity=bogus",
        "status=maybe",
        "colour=red",
        "address=nope",
    ] {
        let (s, b) = a
            .call("GET", &format!("/api/v1/findings?{q}"), Some(ADMIN), "")
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
    }

    let (s, b) = a
        .call("GET", "/api/v1/export/allowlist.txt", Some(ADMIN), "")
        .await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "10.1.0.25\n"));
    let (_, b) = a
        .call("GET", "/api/v1/export/allowlist.nft", Some(ADMIN), "")
        .await;
    assert!(
        b.contains("elements = { 10.1.0.25 }") && b.contains("set mail_direct_v6"),
        "{b}"
    );
    let (_, b) = a
        .call("GET", "/api/v1/export/hosts.csv", Some(ADMIN), "")
        .await;
    assert!(
        b.starts_with("address,hostname,role") && b.contains("10.1.0.26"),
        "{b}"
    );
    assert_eq!(
        a.ok_json("GET", "/api/v1/export/hosts.json", "")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        a.call("GET", "/api/v1/export/passwd", Some(ADMIN), "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.call("DELETE", "/api/v1/networks/10.1.0.0/16", Some(ADMIN), "")
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.call("DELETE", "/api/v1/networks/10.1.0.0/16", Some(ADMIN), "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.call("DELETE", "/api/v1/networks/banana", Some(ADMIN), "")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // Pages escape attacker-controlled text (the banner went into evidence, the note is admin text).
    a.ok_json(
        "PATCH",
        "/api/v1/hosts/10.1.0.26",
        json!({"note":"<script>alert(1)</script>"}).to_string(),
    )
    .await;
    for p in [
        "/hosts",
        "/hosts/10.1.0.26",
        "/hosts/10.1.0.99",
        "/findings?status=open",
        "/sweeps",
    ] {
        let (s, b) = a.call("GET", p, Some(ADMIN), "").await;
        assert!(
            s == StatusCode::OK || s == StatusCode::NOT_FOUND,
            "{p}: {s}"
        );
        assert!(!b.contains("<script>"), "{p} leaks markup: {b}");
    }
    let (_, b) = a.call("GET", "/hosts/10.1.0.26", Some(ADMIN), "").await;
    assert!(b.contains("&lt;script&gt;"), "{b}");
    // The sweep history lists what the sweep saw, the banner escaped.
    let (s, b) = a.call("GET", "/hosts/10.1.0.99", Some(ADMIN), "").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let history = &b[b.find("Sweep history").expect("a sweep history")..];
    assert!(
        history.contains("<td>postfix</td>") && history.contains("220 &lt;x&gt;"),
        "{history}"
    );
    // The findings page says where each finding was tested from.
    let (_, b) = a
        .call("GET", "/findings?status=open", Some(ADMIN), "")
        .await;
    assert!(
        b.contains("Tested from") && b.contains("<td>198.19.0.1</td>"),
        "{b}"
    );
    assert_eq!(
        a.call("GET", "/findings?severity=bogus", Some(ADMIN), "")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

async fn agent_endpoints(kind: Kind) {
    let a = app(kind).await;
    assert_eq!(
        a.call(
            "POST",
            "/api/v1/hosts/192.0.2.1/agent-token",
            Some(ADMIN),
            ""
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        a.call("POST", "/api/v1/hosts/bad/agent-token", Some(ADMIN), "")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    a.ok_json("POST", "/api/v1/hosts", host("192.0.2.1", "non-mail"))
        .await;
    let tok = a
        .ok_json("POST", "/api/v1/hosts/192.0.2.1/agent-token", "")
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = a
        .call("GET", "/api/v1/agent/192.0.2.1/role", Some(&tok), "")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["role"],
        "non-mail"
    );
    assert_eq!(
        a.call("GET", "/api/v1/agent/not-ip/role", Some(&tok), "")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    let path = "/api/v1/agent/192.0.2.1/reports";
    let body = serde_json::to_string(&report()).unwrap();
    for (bad, needle) in [
        (body[..body.len() / 2].to_string(), "malformed agent report"),
        (
            r#"{"schema_version":99}"#.to_string(),
            "unsupported agent report schema version 99",
        ),
        ("[]".to_string(), "malformed"),
    ] {
        let (s, b) = a.call("POST", path, Some(&tok), bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b.contains(needle), "{needle}: {b}");
    }
    assert_eq!(
        a.call("POST", path, Some(&tok), &b"\xff\xfe"[..]).await.0,
        StatusCode::BAD_REQUEST
    );
    let big = format!(
        "{{\"schema_version\":1,\"pad\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    assert_eq!(
        a.call("POST", path, Some(&tok), big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let (s, b) = a.call("POST", path, Some(&tok), body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = a.call("POST", path, Some(&tok), body.clone()).await;
    assert_eq!(s, StatusCode::OK, "retry is idempotent: {b}");
    assert!(b.contains("\"duplicate\":true"));
    let (s, _) = a
        .call_h(
            "POST",
            path,
            Some(&tok),
            body.clone(),
            &[("idempotency-key", "run-1")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let mut other = report();
    other.generated_at = 2;
    let other = serde_json::to_string(&other).unwrap();
    assert_eq!(
        a.call_h(
            "POST",
            path,
            Some(&tok),
            other,
            &[("idempotency-key", "run-1")]
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        a.call_h(
            "POST",
            path,
            Some(&tok),
            body.clone(),
            &[("idempotency-key", "a b")]
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let reports = a
        .ok_json("GET", "/api/v1/hosts/192.0.2.1/reports", "")
        .await;
    assert_eq!(reports.as_array().unwrap().len(), 2);
    // A rotated token locks the old one out.
    a.ok_json("POST", "/api/v1/hosts/192.0.2.1/agent-token", "")
        .await;
    assert_eq!(
        a.call("GET", "/api/v1/agent/192.0.2.1/role", Some(&tok), "")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}
