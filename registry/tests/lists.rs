//! The paged lists (hosts, findings, sweeps, agent reports) on both backends: walking the pages
//! with a filter returns every matching row exactly once, cursors stay within their filter, bad
//! input is a 400 that says why, and CSV downloads carry every row with formulas defused.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::Kind;
use http_body_util::BodyExt;
use relayguard_core::FindingKind;
use relayguard_registry::api::{AppState, router};
use serde_json::Value;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789abcdef";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    finding_pages_walk_every_row_once,
    other_lists_walk_every_row_once,
    cursors_and_filters_are_checked,
    csv_carries_every_row_and_defuses_formulas,
    the_contact_filter_is_exact_at_block_edges,
);

/// Findings generated: more than two CSV batches, so the download spans several pages.
const N: usize = 2300;
const SEVERITIES: [(&str, i64); 5] = [
    ("info", 0),
    ("low", 1),
    ("medium", 2),
    ("high", 3),
    ("critical", 4),
];
const HOSTILE: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";

/// One generated finding, as the test expects the lists to see it.
#[derive(Debug, Clone)]
struct Gen {
    address: String,
    kind: &'static str,
    rank: i64,
    open: bool,
    source: &'static str,
    contact: Option<&'static str>,
}

struct App {
    router: Router,
    t: common::TestStore,
    made: Vec<Gen>,
}

/// A registry holding `N` findings over registered hosts (contact: the registration), a network
/// block (contact: its owner) and addresses nobody answers for; 30 sweeps and 40 agent reports.
async fn app(kind: Kind) -> App {
    let t = common::open(kind).await;
    let pool = t.store.pool();
    let admins = ["alice@x.example", "bob@x.example", "carol@x.example"];
    for i in 0..12 {
        sqlx::query(
            "INSERT INTO hosts (address, hostname, role, admin_name, admin_email, note, registered_on, reviewed_on, status) \
             VALUES ($1, $2, $3, $4, $5, $6, '2026-01-01', '2026-01-01', $7)",
        )
        .bind(format!("10.0.0.{i}"))
        .bind(format!("h{i}.example"))
        .bind(["mail-direct", "non-mail", "internal-only"][i % 3])
        .bind(if i == 0 { HOSTILE.to_string() } else { format!("Admin {i}") })
        .bind(admins[i % 3])
        .bind(if i == 1 { "+cmd|' /C calc'!A0".to_string() } else { String::new() })
        .bind(if i % 4 == 3 { "suspended" } else { "active" })
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO networks (cidr, owner_name, owner_email, note) VALUES ('10.1.0.0/16', 'Net', 'net@x.example', '')",
    )
    .execute(pool)
    .await
    .unwrap();
    let kinds: Vec<&'static str> = FindingKind::ALL.iter().map(|k| k.id()).collect();
    let mut made = Vec::new();
    let mut tx = pool.begin().await.unwrap();
    let mut x: u64 = 12345;
    for i in 0..N {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        let (address, contact) = match i % 3 {
            0 => (format!("10.0.0.{}", i % 12), Some(admins[(i % 12) % 3])),
            1 => (
                format!("10.1.{}.{}", i / 250, i % 250),
                Some("net@x.example"),
            ),
            _ => (format!("10.2.{}.{}", i / 250, i % 250), None),
        };
        let g = Gen {
            address,
            kind: kinds[r % kinds.len()],
            rank: SEVERITIES[(r / 7) % 5].1,
            open: !(r / 41).is_multiple_of(3),
            source: ["sweep", "registry", "agent"][(r / 5) % 3],
            contact,
        };
        let first = 1_700_000_000 + i as i64 * 3600;
        let res = sqlx::query(
            "INSERT INTO findings (address, port, kind, source, severity, severity_rank, summary, evidence, status, \
             first_seen, last_seen, resolved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '{}', $8, $9, $9, $10)",
        )
        .bind(g.address.clone())
        .bind(i as i64)
        .bind(g.kind)
        .bind(g.source)
        .bind(SEVERITIES[g.rank as usize].0)
        .bind(g.rank)
        .bind(if i % 100 == 0 { format!("-{HOSTILE}") } else { format!("finding {i}") })
        .bind(if g.open { "open" } else { "resolved" })
        .bind(first)
        .bind(if g.open { None } else { Some(first + 86_400) })
        .execute(&mut *tx)
        .await;
        res.unwrap();
        made.push(g);
    }
    for i in 0..30i64 {
        sqlx::query(
            "INSERT INTO sweeps (vantage, targets, ports, started_at, finished_at, recorded_at) VALUES ($1, '[]', '[25]', $2, $2, $2)",
        )
        .bind(if i % 3 == 0 { "outside" } else { "inside" })
        .bind(1_767_225_600 + i * 86_400) // 2026-01-01 + i days
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    for i in 0..40i64 {
        sqlx::query(
            "INSERT INTO agent_reports (address, report_id, received_at, generated_at, hostname, agent_version, \
             mta_enabled, mta_listening, actions, body) VALUES ($1, $2, $3, $3, 'pc', '1', 0, $4, 0, '{}')",
        )
        .bind(format!("10.0.0.{}", i % 12))
        .bind(format!("r{i:03}"))
        // Several reports share a second: the cursor's tie-breakers must keep them apart.
        .bind(1_767_225_600 + (i / 4) * 60)
        .bind(i % 2)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let router = router(AppState {
        store: t.store.clone(),
        admin_tokens: Arc::new(vec![ADMIN.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    });
    App { router, t, made }
}

impl App {
    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let req = Request::get(path)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(status.as_u16() < 500, "{path}: {status} {text}");
        (status, headers, text)
    }

    /// Walks an API list from the first page, following `Link: rel="next"`; returns each row's
    /// `key` field as text, in order, and the number of pages.
    async fn walk(&self, first: &str, key: &str) -> (Vec<String>, usize) {
        let mut path = first.to_string();
        let (mut out, mut pages) = (Vec::new(), 0);
        loop {
            let (s, h, b) = self.get(&path).await;
            assert_eq!(s, StatusCode::OK, "{path}: {b}");
            pages += 1;
            let rows: Vec<Value> = serde_json::from_str(&b).unwrap();
            out.extend(rows.iter().map(|r| r[key].to_string()));
            let Some(link) = h.get("link") else {
                assert!(h.get("x-next-cursor").is_none());
                break;
            };
            let link = link.to_str().unwrap();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            path = link[1..link.find('>').unwrap()].to_string();
            assert!(pages < 10_000, "the walk does not end");
        }
        (out, pages)
    }

    /// The row numbers of the findings in the database that match `keep` (the generated ones
    /// and those the registry made itself about the registrations).
    async fn ids_where(&self, keep: impl Fn(&Gen) -> bool) -> BTreeSet<String> {
        let rows =
            sqlx::query("SELECT id, address, kind, severity_rank, status, source FROM findings")
                .fetch_all(self.t.store.pool())
                .await
                .unwrap();
        let kinds: Vec<&'static str> = FindingKind::ALL.iter().map(|k| k.id()).collect();
        let sources = ["sweep", "registry", "agent"];
        rows.iter()
            .filter(|r| {
                let text = |c: &str| sqlx::Row::get::<String, _>(*r, c);
                let address = text("address");
                let contact = if let Some(n) = address.strip_prefix("10.0.0.") {
                    Some(
                        ["alice@x.example", "bob@x.example", "carol@x.example"]
                            [n.parse::<usize>().unwrap() % 3],
                    )
                } else if address.starts_with("10.1.") {
                    Some("net@x.example")
                } else {
                    None
                };
                let g = Gen {
                    kind: kinds.iter().find(|k| **k == text("kind")).unwrap(),
                    rank: sqlx::Row::get::<i64, _>(*r, "severity_rank"),
                    open: text("status") == "open",
                    source: sources.iter().find(|k| **k == text("source")).unwrap(),
                    address,
                    contact,
                };
                keep(&g)
            })
            .map(|r| sqlx::Row::get::<i64, _>(r, "id").to_string())
            .collect()
    }
}

/// Which generated findings a case expects.
type Keep = Box<dyn Fn(&Gen) -> bool>;

/// Asserts two sets of rows are equal, showing only a few differences.
fn same(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    let extra: Vec<_> = got.difference(want).take(5).collect();
    let missing: Vec<_> = want.difference(got).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: {} rows, {} wanted; extra {extra:?}, missing {missing:?}",
        got.len(),
        want.len()
    );
}

fn once(ids: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "a row came twice");
    set
}

async fn finding_pages_walk_every_row_once(kind: Kind) {
    let a = app(kind).await;
    // A kind the generated data has agent findings of (which kinds those are depends on how
    // many kinds there are).
    let kind0 = a
        .made
        .iter()
        .find(|g| g.source == "agent")
        .expect("the generated data has agent findings")
        .kind;
    let cases: Vec<(String, Keep)> = vec![
        ("limit=500".into(), Box::new(|_| true)),
        ("status=open&limit=97".into(), Box::new(|g| g.open)),
        (
            "status=resolved&severity=high&limit=13".into(),
            Box::new(|g| !g.open && g.rank >= 3),
        ),
        (
            format!("kind={kind0}&source=agent&limit=5"),
            Box::new(move |g| g.kind == kind0 && g.source == "agent"),
        ),
        (
            // The contact filter runs after the query: pages still come out full and exact.
            "admin=BOB@x.example&limit=11".into(),
            Box::new(|g| g.contact == Some("bob@x.example")),
        ),
        (
            "admin=net@x.example&status=open&limit=200".into(),
            Box::new(|g| g.contact == Some("net@x.example") && g.open),
        ),
        (
            "address=10.0.0.3&limit=4".into(),
            Box::new(|g| g.address == "10.0.0.3"),
        ),
    ];
    for (q, keep) in cases {
        let (ids, pages) = a.walk(&format!("/api/v1/findings?{q}"), "id").await;
        let want = a.ids_where(keep).await;
        assert!(!want.is_empty(), "{q}: the generated data has no match");
        same(&once(&ids), &want, &q);
        let limit: usize = q.rsplit("limit=").next().unwrap().parse().unwrap();
        assert_eq!(
            pages,
            want.len().div_ceil(limit).max(1),
            "{q}: pages not full"
        );
    }
    // The order: most severe first, newest first within a severity.
    let (ids, _) = a
        .walk("/api/v1/findings?severity=critical&limit=1000", "id")
        .await;
    let nums: Vec<i64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(nums.windows(2).all(|w| w[0] > w[1]), "{nums:?}");

    // The page walks the same rows as the API, following its own "Next page" links.
    let mut path = "/findings?status=open&severity=critical&limit=50".to_string();
    let mut seen = Vec::new();
    loop {
        let (s, _, html) = a.get(&path).await;
        assert_eq!(s, StatusCode::OK);
        for part in html.split("<tr").skip(2) {
            let id = part
                .split("<td>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            seen.push(id.to_string());
        }
        match html.split("rel=\"next\" href=\"").nth(1) {
            Some(rest) => path = rest.split('"').next().unwrap().replace("&amp;", "&"),
            None => break,
        }
    }
    same(
        &once(&seen),
        &a.ids_where(|g| g.open && g.rank == 4).await,
        "findings page",
    );
}

async fn other_lists_walk_every_row_once(kind: Kind) {
    let a = app(kind).await;
    let (all, _) = a.walk("/api/v1/hosts?limit=5", "address").await;
    assert_eq!(once(&all).len(), 12);
    let (bob, _) = a
        .walk("/api/v1/hosts?admin=bob@x.example&limit=2", "address")
        .await;
    let want: BTreeSet<String> = [1, 4, 7, 10]
        .iter()
        .map(|i| format!("\"10.0.0.{i}\""))
        .collect();
    assert_eq!(once(&bob), want);
    let (sus, _) = a
        .walk(
            "/api/v1/hosts?status=suspended&role=mail-direct&limit=1",
            "address",
        )
        .await;
    // i % 4 == 3 and i % 3 == 0: 3.
    assert_eq!(sus, vec!["\"10.0.0.3\"".to_string()]);

    let (sweeps, _) = a.walk("/api/v1/sweeps?limit=7", "id").await;
    assert_eq!(once(&sweeps).len(), 30);
    let (outside, _) = a
        .walk(
            "/api/v1/sweeps?vantage=outside&since=2026-01-04&before=2026-01-20&limit=2",
            "started_at",
        )
        .await;
    // Days 3 to 18 whose number is a multiple of 3: 3, 6, 9, 12, 15, 18.
    assert_eq!(once(&outside).len(), 6, "{outside:?}");

    let (reports, _) = a.walk("/api/v1/reports?limit=3", "report_id").await;
    assert_eq!(once(&reports).len(), 40);
    let (live, _) = a
        .walk("/api/v1/reports?listening=yes&limit=3", "report_id")
        .await;
    let want: BTreeSet<String> = (0..40)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("\"r{i:03}\""))
        .collect();
    assert_eq!(once(&live), want);
    let (one, _) = a
        .walk("/api/v1/reports?address=10.0.0.5&limit=1", "report_id")
        .await;
    assert_eq!(one.len(), 3, "{one:?}");

    // The pages list and filter the same way.
    for path in [
        "/hosts?admin=bob@x.example",
        "/sweeps?vantage=outside",
        "/reports?listening=no",
    ] {
        let (s, _, html) = a.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(html.contains("format=csv"), "{path}: no CSV link");
    }
    let (_, _, html) = a.get("/hosts?admin=bob@x.example").await;
    assert!(
        html.contains("10.0.0.4") && !html.contains("10.0.0.3<"),
        "{html}"
    );
}

async fn cursors_and_filters_are_checked(kind: Kind) {
    let a = app(kind).await;
    let (_, h, _) = a.get("/api/v1/findings?status=open&limit=10").await;
    let open_cursor = h["x-next-cursor"].to_str().unwrap().to_string();
    // The cursor of one filter does not walk another: it is refused, not silently applied.
    for other in [
        format!("/api/v1/findings?status=resolved&limit=10&after={open_cursor}"),
        format!("/api/v1/findings?status=open&kind=open-relay&after={open_cursor}"),
        format!("/api/v1/sweeps?after={open_cursor}"),
        format!("/findings?status=resolved&after={open_cursor}"),
    ] {
        let (s, _, b) = a.get(&other).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{other}: {b}");
        assert!(b.contains("another list or filter"), "{other}: {b}");
    }
    // The same filter with another page size may go on from it.
    let (s, _, _) = a
        .get(&format!(
            "/api/v1/findings?status=open&limit=3&after={open_cursor}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let bad: HashMap<&str, &str> = HashMap::from([
        ("/api/v1/findings?after=zzzz", "invalid cursor"),
        ("/api/v1/findings?after=00aa", "invalid cursor"),
        ("/api/v1/findings?limit=0", "invalid limit"),
        ("/api/v1/findings?limit=5000", "invalid limit"),
        ("/api/v1/findings?severity=urgent", "invalid severity"),
        ("/api/v1/findings?kind=nope", "unknown finding kind"),
        ("/api/v1/findings?source=x", "invalid source"),
        ("/api/v1/findings?address=10.0.0.999", "invalid IP address"),
        ("/api/v1/findings?sort=id", "unknown query parameter"),
        ("/api/v1/findings?format=xml", "invalid format"),
        ("/api/v1/hosts?role=mailserver", "mail-direct"),
        ("/api/v1/sweeps?since=yesterday", "invalid date"),
        ("/api/v1/reports?listening=maybe", "invalid listening"),
        ("/findings?severity=urgent", "invalid severity"),
        ("/hosts.csv?status=gone", "status"),
    ]);
    for (path, want) in bad {
        let (s, _, b) = a.get(path).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert!(b.contains(want), "{path}: {b}");
    }
    // Without a token: no list.
    let req = Request::get("/api/v1/findings.csv")
        .body(Body::empty())
        .unwrap();
    let resp = a.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn csv_carries_every_row_and_defuses_formulas(kind: Kind) {
    let a = app(kind).await;
    for (path, keep) in [
        ("/api/v1/findings.csv", Box::new(|_: &Gen| true) as Keep),
        (
            "/api/v1/findings?format=csv&status=open&limit=3",
            Box::new(|g: &Gen| g.open),
        ),
        (
            "/findings.csv?admin=alice@x.example",
            Box::new(|g: &Gen| g.contact == Some("alice@x.example")),
        ),
    ] {
        let (s, h, body) = a.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
        let mut r = csv::Reader::from_reader(body.as_bytes());
        assert_eq!(r.headers().unwrap().get(0), Some("id"));
        let ids: Vec<String> = r.records().map(|rec| rec.unwrap()[0].to_string()).collect();
        // Every matching row, not one page, whatever `limit` says.
        same(&once(&ids), &a.ids_where(keep).await, path);
        for rec in csv::Reader::from_reader(body.as_bytes()).records() {
            let rec = rec.unwrap();
            for cell in rec.iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@']),
                    "{path}: live formula {cell:?}"
                );
            }
        }
    }
    let (_, _, body) = a.get("/api/v1/findings.csv?address=10.0.0.0").await;
    assert!(
        body.contains(&format!("'-{}", HOSTILE.replace('"', "\"\""))),
        "{body}"
    );

    let (s, _, body) = a.get("/api/v1/hosts.csv?role=mail-direct").await;
    assert_eq!(s, StatusCode::OK);
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(body.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 4);
    let h0 = rows.iter().find(|r| &r[0] == "10.0.0.0").unwrap();
    // Quoting survives the round trip; only the leading apostrophe is added.
    assert_eq!(&h0[4], format!("'{HOSTILE}"));
    let (_, _, body) = a.get("/hosts.csv?admin=bob@x.example").await;
    assert!(body.contains("'+cmd|' /C calc'!A0"), "{body}");
    for path in [
        "/api/v1/sweeps.csv?vantage=inside",
        "/reports.csv",
        "/api/v1/reports.csv?listening=no",
    ] {
        let (s, _, body) = a.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        let n = csv::Reader::from_reader(body.as_bytes()).records().count();
        assert_eq!(
            n,
            [20, 40, 20][[
                "/api/v1/sweeps.csv?vantage=inside",
                "/reports.csv",
                "/api/v1/reports.csv?listening=no"
            ]
            .iter()
            .position(|p| *p == path)
            .unwrap()],
            "{path}"
        );
    }
}

/// The contact filter narrows the query by the contact's registrations and blocks before it
/// checks each row: blocks not on octet boundaries, a more specific block of someone else's,
/// registrations inside and outside a block, dotted text that shares a prefix with a block,
/// and an IPv6 block (no text prefix: every row is read and checked).
async fn the_contact_filter_is_exact_at_block_edges(kind: Kind) {
    use relayguard_registry::store::{FindingFilter, FindingListFilter, PageRequest};
    let t = common::open(kind).await;
    let pool = t.store.pool();
    for (cidr, owner) in [
        ("10.5.0.0/20", "dana@x.example"),
        ("10.5.3.0/24", "eve@x.example"),
        ("10.7.8.64/26", "DANA@x.example"),
        ("10.6.0.0/16", "frank@x.example"),
        ("2001:db8::/48", "gina@x.example"),
    ] {
        sqlx::query(
            "INSERT INTO networks (cidr, owner_name, owner_email, note) VALUES ($1, 'n', $2, '')",
        )
        .bind(cidr)
        .bind(owner)
        .execute(pool)
        .await
        .unwrap();
    }
    for (address, admin) in [
        ("10.5.1.1", "eve@x.example"),
        ("10.6.1.1", "dana@x.example"),
    ] {
        sqlx::query(
            "INSERT INTO hosts (address, hostname, role, admin_name, admin_email, note, registered_on, reviewed_on, status) \
             VALUES ($1, 'h', 'mail-direct', 'A', $2, '', '2026-01-01', '2026-01-01', 'active')",
        )
        .bind(address)
        .bind(admin)
        .execute(pool)
        .await
        .unwrap();
    }
    let findings = [
        ("10.5.0.1", Some("dana")),
        ("10.5.15.255", Some("dana")),
        ("10.5.16.1", None),
        ("10.5.150.1", None),
        ("10.50.0.1", None),
        ("10.5.3.7", Some("eve")),
        ("10.5.1.1", Some("eve")),
        ("10.6.1.1", Some("dana")),
        ("10.6.2.2", Some("frank")),
        ("10.7.8.64", Some("dana")),
        ("10.7.8.127", Some("dana")),
        ("10.7.8.128", None),
        ("10.7.8.6", None),
        ("2001:db8::5", Some("gina")),
        ("2001:db8:1::5", None),
    ];
    for (i, (address, _)) in findings.iter().enumerate() {
        for port in [25, 587] {
            sqlx::query(
                "INSERT INTO findings (address, port, kind, source, severity, severity_rank, summary, evidence, status, \
                 first_seen, last_seen) VALUES ($1, $2, 'open-relay', 'sweep', 'critical', 4, 's', '{}', 'open', $3, $3)",
            )
            .bind(*address)
            .bind(port)
            .bind(1_700_000_000 + i as i64)
            .execute(pool)
            .await
            .unwrap();
        }
    }
    for admin in ["dana", "eve", "frank", "gina", "nobody"] {
        let filter = FindingListFilter {
            base: FindingFilter {
                admin: Some(format!("{admin}@X.example")),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut got = Vec::new();
        let mut req = PageRequest {
            after: None,
            limit: 3,
        };
        loop {
            let page = t.store.findings_page(&filter, &req).await.unwrap();
            got.extend(page.rows.iter().map(|f| f.address.clone()));
            match page.next {
                Some(next) => req.after = Some(next),
                None => break,
            }
        }
        got.sort();
        let mut want: Vec<String> = findings
            .iter()
            .filter(|(_, who)| *who == Some(admin))
            .flat_map(|(a, _)| [a.to_string(), a.to_string()])
            .collect();
        want.sort();
        assert_eq!(got, want, "{admin}");
    }
}
