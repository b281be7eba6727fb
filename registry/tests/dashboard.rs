//! The dashboard on both backends: the open-findings history from first-seen and resolved times,
//! time to fix per network block and kind, the oldest open criticals, the last sweep of each
//! vantage, quiet agents; the page's access rules, its escaping, and its chart (well-formed SVG
//! with one point per day for each severity).

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Kind;
use http_body_util::BodyExt;
use relayguard_registry::Store;
use relayguard_registry::api::{AppState, router};
use relayguard_registry::store::dashboard::DAY;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789abcdef";
const H: i64 = 3600;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    figures_follow_the_history,
    the_page_is_for_admins_escaped_and_charted
);

fn now() -> i64 {
    relayguard_registry::model::now_unix()
}

/// Inserts a finding seen first at `first`, resolved at `resolved` (open when None).
// One positional argument per column reads best in the table of findings below.
#[allow(clippy::too_many_arguments)]
async fn finding(
    s: &Store,
    n: i64,
    address: &str,
    kind: &str,
    severity: (&str, i64),
    first: i64,
    resolved: Option<i64>,
    summary: &str,
) {
    sqlx::query(
        "INSERT INTO findings (address, port, kind, source, severity, severity_rank, summary, evidence, status, \
         first_seen, last_seen, resolved_at) VALUES ($1, $2, $3, 'sweep', $4, $5, $6, '{}', $7, $8, $8, $9)",
    )
    .bind(address.to_string())
    .bind(n)
    .bind(kind.to_string())
    .bind(severity.0.to_string())
    .bind(severity.1)
    .bind(summary.to_string())
    .bind(if resolved.is_some() { "resolved" } else { "open" })
    .bind(first)
    .bind(resolved)
    .execute(s.pool())
    .await
    .unwrap();
}

const CRIT: (&str, i64) = ("critical", 4);
const HIGH: (&str, i64) = ("high", 3);
const MED: (&str, i64) = ("medium", 2);
const LOW: (&str, i64) = ("low", 1);

/// A registry with a known history (relative to `t`), two vantages and three enrolled agents.
async fn fill(s: &Store, t: i64) {
    let day = |d: i64| (t.div_euclid(DAY) - d) * DAY + 12 * H;
    // Open all along (first seen before the 30-day window).
    finding(s, 1, "10.1.0.1", "open-relay", MED, day(100), None, "m").await;
    // Critical, open since 5 days ago; another since 20 days ago (the oldest).
    finding(
        s,
        2,
        "10.1.0.2",
        "open-relay",
        CRIT,
        day(5),
        None,
        "<b>crit</b>",
    )
    .await;
    finding(
        s,
        3,
        "10.2.0.3",
        "open-relay",
        CRIT,
        day(20),
        None,
        "oldest",
    )
    .await;
    // High: open from 10 days ago until 3 days ago (fixed in 7 days).
    finding(
        s,
        4,
        "10.1.0.4",
        "backscatter-source",
        HIGH,
        day(10),
        Some(day(3)),
        "h",
    )
    .await;
    // Resolved: 1, 2 and 4 days in 10.1.0.0/16; 10 days outside any block.
    for (n, dt) in [(5, 1), (6, 2), (7, 4)] {
        finding(
            s,
            n,
            "10.1.9.9",
            "open-relay",
            LOW,
            day(30),
            Some(day(30) + dt * DAY),
            "r",
        )
        .await;
    }
    finding(
        s,
        8,
        "10.3.0.1",
        "backscatter-source",
        MED,
        day(40),
        Some(day(30)),
        "r",
    )
    .await;
    sqlx::query("INSERT INTO networks (cidr, owner_name, owner_email, note) VALUES ('10.1.0.0/16', 'N', 'n@x.example', '')")
        .execute(s.pool())
        .await
        .unwrap();
    for (vantage, targets, at) in [
        ("inside", "[\"10.1.0.0/24\"]", t - 3 * DAY),
        ("inside", "[\"10.1.0.0/24\",\"10.1.1.1\"]", t - DAY),
        (
            "<script>alert('vantage')</script>",
            "[\"10.9.0.0/30\"]",
            t - 2 * DAY,
        ),
    ] {
        sqlx::query(
            "INSERT INTO sweeps (vantage, targets, ports, started_at, finished_at, recorded_at, results, open_ports) \
             VALUES ($1, $2, '[25,587]', $3, $4, $4, 300, 7)",
        )
        .bind(vantage)
        .bind(targets)
        .bind(at - 600)
        .bind(at)
        .execute(s.pool())
        .await
        .unwrap();
    }
    for (i, reports) in [
        // Every six hours, last one 8 hours ago: quiet (more than 6 h + 1 h).
        vec![t - 20 * H, t - 14 * H, t - 8 * H],
        // Every six hours, last one an hour ago: on time.
        vec![t - 13 * H, t - 7 * H, t - H],
        // Never reported.
        vec![],
    ]
    .into_iter()
    .enumerate()
    {
        let address = format!("10.1.5.{i}");
        sqlx::query(
            "INSERT INTO hosts (address, hostname, role, admin_name, admin_email, note, registered_on, reviewed_on, status) \
             VALUES ($1, 'h.example', 'non-mail', 'A', 'a@x.example', '', '2026-01-01', '2026-01-01', 'active')",
        )
        .bind(address.clone())
        .execute(s.pool())
        .await
        .unwrap();
        s.create_agent_token(&address).await.unwrap();
        for (j, at) in reports.into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO agent_reports (address, report_id, received_at, generated_at, hostname, agent_version, \
                 mta_enabled, mta_listening, actions, body) VALUES ($1, $2, $3, $3, $4, '1', 0, 0, 0, '{}')",
            )
            .bind(address.clone())
            .bind(format!("r{j}"))
            .bind(at)
            .bind("<img src=x onerror=alert('agent')>")
            .execute(s.pool())
            .await
            .unwrap();
        }
    }
}

async fn figures_follow_the_history(kind: Kind) {
    let t = common::open(kind).await;
    let s = &t.store;
    let at = now();
    fill(s, at).await;
    let d = s.dashboard(at, 30).await.unwrap();
    assert_eq!(d.history.len(), 30);
    let today = at.div_euclid(DAY);
    for (i, day) in d.history.iter().enumerate() {
        let ago = today - day.day / DAY;
        assert_eq!(ago, 29 - i as i64);
        assert_eq!(day.open[2], 1, "medium, {ago} days ago");
        let crit = i64::from(ago <= 5) + i64::from(ago <= 20);
        assert_eq!(day.open[4], crit, "critical, {ago} days ago");
        assert_eq!(
            day.open[3],
            i64::from((4..=10).contains(&ago)),
            "high, {ago} days ago"
        );
    }

    let net = d
        .fix_by_network
        .iter()
        .find(|f| f.group == "10.1.0.0/16")
        .unwrap();
    // 7, 1, 2, 4 days: median (nearest rank) 2 days, 90th percentile 7 days.
    assert_eq!((net.resolved, net.median, net.p90), (4, 2 * DAY, 7 * DAY));
    let none = d
        .fix_by_network
        .iter()
        .find(|f| f.group == "no network block")
        .unwrap();
    assert_eq!((none.resolved, none.median), (1, 10 * DAY));
    let bs = d
        .fix_by_kind
        .iter()
        .find(|f| f.group == "backscatter-source")
        .unwrap();
    assert_eq!((bs.resolved, bs.median, bs.p90), (2, 7 * DAY, 10 * DAY));

    let crit: Vec<&str> = d
        .oldest_critical
        .iter()
        .map(|f| f.summary.as_str())
        .collect();
    assert_eq!(crit, ["oldest", "<b>crit</b>"]);
    assert_eq!(
        d.oldest_critical[1].admin_email.as_deref(),
        Some("n@x.example")
    );

    assert_eq!(d.vantages.len(), 2);
    let inside = d
        .vantages
        .iter()
        .find(|v| v.sweep.vantage == "inside")
        .unwrap();
    // The newer of the two: a /24 and one address, two ports.
    assert_eq!(inside.sweep.finished_at, at - DAY);
    assert_eq!(inside.planned, Some(257 * 2));

    let quiet: Vec<(&str, i64)> = d
        .silent_agents
        .iter()
        .map(|a| (a.address.as_str(), a.interval))
        .collect();
    assert_eq!(quiet, [("10.1.5.2", 6 * H), ("10.1.5.0", 6 * H)]);
}

async fn get(app: &Router, path: &str, token: bool) -> (StatusCode, String, Option<String>) {
    let mut req = Request::get(path);
    if token {
        req = req.header("authorization", format!("Bearer {ADMIN}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        location,
    )
}

/// The number of points of each `<polyline>` in `svg`, which must be well-formed XML, and its
/// texts.
fn polylines(svg: &str) -> (Vec<usize>, Vec<String>) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(svg);
    let (mut out, mut texts) = (Vec::new(), Vec::new());
    let mut depth = 0i64;
    loop {
        match r.read_event().expect("the chart is well-formed XML") {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "polyline" => {
                let points = e.try_get_attribute("points").unwrap().expect("points");
                let text = points.value.to_string();
                out.push(text.split_whitespace().count());
            }
            Event::Text(t) => texts.push(t.into_inner().trim().to_string()),
            Event::Eof => break,
            _ => {}
        }
        depth += 1;
    }
    assert!(depth > 10);
    (out, texts)
}

async fn the_page_is_for_admins_escaped_and_charted(kind: Kind) {
    let t = common::open(kind).await;
    fill(&t.store, now()).await;
    let app = router(AppState {
        store: t.store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    });
    assert_eq!(
        get(&app, "/dashboard", false).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, location) = get(&app, "/", true).await;
    assert!(s.is_redirection(), "{s}");
    assert_eq!(location.as_deref(), Some("/dashboard"));
    for bad in [
        "/dashboard?days=1",
        "/dashboard?days=x",
        "/dashboard?color=red",
    ] {
        assert_eq!(
            get(&app, bad, true).await.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    let (s, html, _) = get(&app, "/dashboard?days=45", true).await;
    assert_eq!(s, StatusCode::OK);
    // Every string the registry was given is escaped: summaries, vantage and host names.
    for raw in ["<b>crit</b>", "<script>alert('vantage')", "<img src=x"] {
        assert!(!html.contains(raw), "unescaped {raw:?}");
    }
    for escaped in [
        "&lt;b&gt;crit&lt;/b&gt;",
        "&lt;script&gt;alert",
        "&lt;img src=x",
    ] {
        assert!(html.contains(escaped), "missing {escaped:?}");
    }
    assert_eq!(html.matches("<svg").count(), 1);
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap() + 6];
    // One line per severity with one point per day (the legend's short lines have two).
    let (lines, texts) = polylines(svg);
    assert_eq!(lines.iter().filter(|n| **n == 45).count(), 5, "{lines:?}");
    // A legend and axis titles, so the chart reads without colour.
    for label in [
        "critical",
        "high",
        "medium",
        "low",
        "info",
        "open findings",
        "day",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "no label {label:?} in {texts:?}"
        );
    }
    assert!(html.contains("10.1.0.0/16") && html.contains("Agents that have gone quiet"));
}

/// Serves `store`'s pages on a loopback port; returns the base URL with the admin token as
/// HTTP Basic credentials.
async fn serve(store: &Store) -> String {
    let app = router(AppState {
        store: store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://admin:{ADMIN}@{addr}")
}

/// The dashboard as a browser builds it: the chart is inline SVG in the DOM, not a picture the
/// browser failed to fetch, with its five series and legend.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_renders_in_chromium() {
    let t = common::open(Kind::Sqlite).await;
    fill(&t.store, now()).await;
    let base = serve(&t.store).await;
    let dom = tokio::task::spawn_blocking(move || {
        relayguard_testkit::browser::dump_dom(&format!("{base}/dashboard?days=30"))
    })
    .await
    .unwrap();
    assert!(dom.contains("<h1>Dashboard</h1>"), "{dom}");
    let start = dom.find("<svg").expect("an inline SVG chart in the DOM");
    let svg = &dom[start..dom[start..].find("</svg>").unwrap() + start + 6];
    let (lines, texts) = polylines(svg);
    assert_eq!(lines.iter().filter(|n| **n == 30).count(), 5, "{lines:?}");
    assert!(texts.iter().any(|t| t == "critical"), "{texts:?}");
    // The escaped vantage name stays text in the DOM: no script element came from it.
    assert!(
        !dom.contains("<script>alert"),
        "a server-supplied string became markup"
    );
}

/// Findings spread over the last four months: most fixed after a while, criticals faster.
async fn fill_history(s: &Store, t: i64) {
    let mut x: u64 = 7;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let kinds = [
        "open-relay",
        "backscatter-source",
        "auth-over-plaintext",
        "mta-on-non-mail-host",
    ];
    for n in 0..400i64 {
        let sev = [
            ("info", 0),
            ("low", 1),
            ("low", 1),
            ("medium", 2),
            ("medium", 2),
            ("high", 3),
            ("critical", 4),
        ][next(7) as usize];
        let first = t - (next(120) as i64) * DAY - (next(86_400) as i64);
        let fix = (next(40) as i64 + 1) * DAY / (sev.1 + 1);
        let resolved = (next(10) < 7 && first + fix < t).then_some(first + fix);
        let address = format!("10.{}.{}.{}", 1 + next(3), next(4), 10 + n % 200);
        finding(
            s,
            100 + n,
            &address,
            kinds[next(4) as usize],
            sev,
            first,
            resolved,
            "generated",
        )
        .await;
    }
    for cidr in ["10.2.0.0/16", "10.3.0.0/16"] {
        sqlx::query("INSERT INTO networks (cidr, owner_name, owner_email, note) VALUES ($1, 'Dept', 'dept@x.example', '')")
            .bind(cidr)
            .execute(s.pool())
            .await
            .unwrap();
    }
}

/// Writes docs/screenshots/{dashboard,findings,host}.png from a generated registry:
/// `cargo test -p relayguard-registry --test dashboard -- --ignored screenshots`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "writes docs/screenshots; run by hand after changing the pages"]
async fn screenshots() {
    let t = common::open(Kind::Sqlite).await;
    let at = now();
    fill(&t.store, at).await;
    fill_history(&t.store, at).await;
    let base = serve(&t.store).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    tokio::task::spawn_blocking(move || {
        for (path, file, height) in [
            ("/dashboard", "dashboard.png", 2400),
            ("/findings?status=open&limit=25", "findings.png", 1400),
            ("/hosts/10.1.5.0", "host.png", 900),
        ] {
            let png = relayguard_testkit::browser::screenshot(
                &format!("{base}{path}"),
                &dir.join(file),
                1280,
                height,
            );
            println!("{}", png.display());
        }
    })
    .await
    .unwrap();
}
