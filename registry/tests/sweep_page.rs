//! The page of a queued sweep, `/sweeps/{id}`: admins only, progress per vantage as
//! `relayguard sweeps show` prints it, everything escaped; on SQLite (no queue) a 404.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Kind;
use http_body_util::BodyExt;
use relayguard_registry::api::{AppState, router};
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789abcdef";

async fn get(t: &common::TestStore, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let app = router(AppState {
        store: t.store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    });
    let mut req = Request::builder().uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Writes a queued sweep as the planner and the workers leave it: vantage "outside" merged,
/// and a vantage with markup in its name half done, one shard quarantined.
async fn queued_sweep(url: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    for sql in [
        "INSERT INTO queue_sweeps (id, created_at, sweep_args, ports, shard_size, addresses) \
         VALUES (1, 1796083200, '[\"sweep\",\"--queue\",\"10.0.0.0/22\",\"--note=<b>x</b>\"]', '[25]', 256, 1024)",
        "INSERT INTO queue_vantages (sweep_id, vantage, state, registry_sweep_id) VALUES \
         (1, 'outside', 'merged', 7), (1, '<script>alert(1)</script>', 'running', NULL)",
        "INSERT INTO queue_shards (sweep_id, vantage, shard, first_address, last_address, addresses, done, state, open_ports) VALUES \
         (1, 'outside', 0, '10.0.0.0', '10.0.0.255', 256, 256, 'done', 2), \
         (1, 'outside', 1, '10.0.1.0', '10.0.1.255', 256, 256, 'done', 0), \
         (1, 'outside', 2, '10.0.2.0', '10.0.2.255', 256, 256, 'done', 1), \
         (1, 'outside', 3, '10.0.3.0', '10.0.3.255', 256, 256, 'done', 0), \
         (1, '<script>alert(1)</script>', 0, '10.0.0.0', '10.0.0.255', 256, 256, 'done', 1), \
         (1, '<script>alert(1)</script>', 1, '10.0.1.0', '10.0.1.255', 256, 128, 'running', 0), \
         (1, '<script>alert(1)</script>', 2, '10.0.2.0', '10.0.2.255', 256, 0, 'pending', 0), \
         (1, '<script>alert(1)</script>', 3, '10.0.3.0', '10.0.3.255', 256, 0, 'quarantined', 0)",
        "INSERT INTO queue_results (sweep_id, vantage, address, port, shard, host, findings, written_by) VALUES \
         (1, 'outside', '10.0.0.25', 25, 0, '{}', 3, 'w'), (1, 'outside', '10.0.2.25', 25, 2, '{}', 1, 'w')",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

#[tokio::test]
async fn only_admins_see_the_page_of_a_queued_sweep_and_everything_is_escaped() {
    let t = common::open(Kind::Postgres).await;
    queued_sweep(&t.url).await;
    // Anonymous, and a wrong token: 401, and nothing of the sweep.
    for token in [None, Some("not-the-token")] {
        let (s, b) = get(&t, "/sweeps/1", token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}: {b}");
        assert!(!b.contains("outside"), "{b}");
    }
    let (s, b) = get(&t, "/sweeps/1", Some(ADMIN)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        !b.contains("<script>") && !b.contains("<b>x"),
        "markup leaked: {b}"
    );
    assert!(b.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{b}");
    assert!(b.contains("--note=&lt;b&gt;x&lt;/b&gt;"), "{b}");
    let row = |vantage: &str| -> String {
        let start = b.find(&format!("<td>{vantage}</td>")).expect(vantage);
        b[start..start + b[start..].find("</tr>").unwrap()].to_string()
    };
    // outside: four shards done, every address, 3 open ports, 4 findings, registry sweep 7.
    let outside = row("outside");
    let cells: Vec<&str> = outside
        .split("<td")
        .skip(1)
        .map(|c| {
            let c = &c[c.find('>').unwrap() + 1..];
            &c[..c.find("</td>").unwrap()]
        })
        .collect();
    assert_eq!(
        cells,
        [
            "outside",
            "merged",
            "4",
            "0",
            "0",
            "0",
            "1024 / 1024",
            "100.0%",
            "3",
            "4",
            "#7"
        ]
    );
    let other = row("&lt;script&gt;alert(1)&lt;/script&gt;");
    assert!(
        other.contains(">1</td>") && other.contains("384 / 1024") && other.contains("37.5%"),
        "{other}"
    );
    assert!(other.contains("class=\"n quarantined\""), "{other}");
    assert!(b.contains("shard 3: 10.0.3.0 – 10.0.3.255"), "{b}");
    // Still running: the page reloads itself.
    assert!(b.contains("http-equiv=\"refresh\""), "{b}");

    let (s, _) = get(&t, "/sweeps/2", Some(ADMIN)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&t, "/sweeps/x%3Cb%3E", Some(ADMIN)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The sweeps list is still its own page.
    let (s, b) = get(&t, "/sweeps", Some(ADMIN)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn on_sqlite_there_is_no_queued_sweep() {
    let t = common::open(Kind::Sqlite).await;
    let (s, _) = get(&t, "/sweeps/1", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = get(&t, "/sweeps/1", Some(ADMIN)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b.contains("PostgreSQL"), "{b}");
}
