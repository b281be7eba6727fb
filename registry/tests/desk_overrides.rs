//! Administrators override the findings of their own hosts at the desk (API and page form),
//! within limits: not another's host, not a critical finding, an accepted risk for at most
//! half a year; every change in the audit log under their address. On both backends.

mod desk_support;

use axum::http::StatusCode;
use desk_support::{As, DeskApp, app, common::Kind, form, host};
use relayguard_core::scan::HostResult;
use relayguard_registry::SweepMeta;
use relayguard_registry::model::{Role, format_date, now_unix, today};
use relayguard_registry::store::{FindingFilter, FindingStatus};
use serde_json::{Value, json};

const ALICE: &str = "alice@lab.example.ac.jp";
const BOB: &str = "bob@lab.example.ac.jp";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    administrators_override_their_own_findings,
    the_desk_form_overrides_and_clears
);

fn result(address: &str, port: u16, kind: &str, severity: &str) -> HostResult {
    serde_json::from_value(json!({
        "address": address, "port": port, "source": "198.19.0.1", "state": "open",
        "smtp": { "banner": "220 mx ESMTP postfix", "mta": "postfix", "starttls": false },
        "tests": [],
        "findings": [{
            "kind": kind, "severity": severity,
            "summary": format!("{kind} on {address}:{port}"),
            "evidence": { "tests": ["plain-external"], "transcript": [] }
        }],
        "transcript": { "lines": [] },
        "elapsed_ms": 42
    }))
    .expect("valid HostResult JSON")
}

/// Alice has 10.1.0.10 (a high backscatter finding on 25, a critical open relay on 587); Bob
/// has 10.2.0.20 (a high backscatter finding). Returns the ids: Alice's high, Alice's critical,
/// Bob's high.
async fn seed(app: &DeskApp) -> (i64, i64, i64) {
    let s = &app.store;
    for (a, name, who) in [
        ("10.1.0.10", "mx.alice.example.ac.jp", ALICE),
        ("10.2.0.20", "mx.bob.example.ac.jp", BOB),
    ] {
        s.add_host(&host(a, name, Role::MailDirect, who))
            .await
            .unwrap();
    }
    let now = now_unix();
    let meta = SweepMeta {
        vantage: "campus-core".into(),
        targets: vec!["10.1.0.10".into(), "10.2.0.20".into()],
        ports: vec![25, 587],
        started_at: now - 5,
        finished_at: now,
    };
    s.record_sweep(
        &meta,
        &[
            result("10.1.0.10", 25, "backscatter-source", "high"),
            result("10.1.0.10", 587, "open-relay", "critical"),
            result("10.2.0.20", 25, "backscatter-source", "high"),
        ],
    )
    .await
    .unwrap();
    let open = s
        .list_findings(&FindingFilter {
            status: Some(FindingStatus::Open),
            ..FindingFilter::default()
        })
        .await
        .unwrap();
    let id = |address: &str, port: i64| {
        open.iter()
            .find(|f| f.address == address && f.port == port)
            .unwrap_or_else(|| panic!("a finding on {address}:{port} in {open:?}"))
            .id
    };
    (
        id("10.1.0.10", 25),
        id("10.1.0.10", 587),
        id("10.2.0.20", 25),
    )
}

fn in_days(n: i64) -> String {
    format_date(today() + time::Duration::days(n))
}

async fn administrators_override_their_own_findings(kind: Kind) {
    let app = app(kind, "smtp://127.0.0.1:9", "http://registry.example.ac.jp").await;
    let (alice_high, alice_critical, bob_high) = seed(&app).await;
    let alice = app.session(ALICE).await;
    let json_ct = Some("application/json");
    let post = |id: i64, body: Value, who| {
        let app = &app;
        async move {
            app.call(
                "POST",
                &format!("/api/v1/desk/findings/{id}/override"),
                who,
                &[],
                json_ct,
                body.to_string(),
            )
            .await
        }
    };
    let accept = |days: i64| json!({ "kind": "accepted-risk", "reason": "lab MTA behind its own firewall", "until": in_days(days) });

    // Nobody: 401. Alice on Bob's host: 403. Alice on her own critical finding: 403.
    assert_eq!(
        post(alice_high, accept(30), As::Nobody).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = post(bob_high, accept(30), As::Session(&alice)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = post(alice_critical, accept(30), As::Session(&alice)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("only the security team"), "{}", r.body);
    // Without the session's CSRF token: 403, nothing changed.
    let no_csrf = desk_support::Sess {
        secret: alice.secret.clone(),
        csrf: "wrong".into(),
    };
    assert_eq!(
        post(alice_high, accept(30), As::Session(&no_csrf))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Longer than half a year, no date for an accepted risk, a "by" of her choosing, an
    // unknown finding: clear errors.
    let r = post(alice_high, accept(400), As::Session(&alice)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("at most 183 days"), "{}", r.body);
    let r = post(
        alice_high,
        json!({ "kind": "accepted-risk", "reason": "r" }),
        As::Session(&alice),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = post(
        alice_high,
        json!({ "kind": "false-positive", "reason": "r", "by": "security-team" }),
        As::Session(&alice),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        post(999_999, accept(30), As::Session(&alice)).await.status,
        StatusCode::NOT_FOUND
    );
    for id in [alice_high, alice_critical, bob_high] {
        assert!(
            app.store
                .finding(id)
                .await
                .unwrap()
                .unwrap()
                .overridden
                .is_none()
        );
    }

    // Her own high finding: held, under her address, in the audit log.
    let r = post(alice_high, accept(90), As::Session(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let f = app.store.finding(alice_high).await.unwrap().unwrap();
    let o = f.overridden.expect("the override is stored");
    assert_eq!(o.made_by, ALICE);
    assert_eq!(o.until.as_deref(), Some(in_days(90).as_str()));
    let log = app.store.audit_log(1).await.unwrap();
    assert_eq!(
        (log[0].actor.as_str(), log[0].action.as_str()),
        (ALICE, "override-set")
    );
    // The team's findings page shows who made it.
    let page = app.get("/findings?status=open", As::Team).await;
    assert!(
        page.body.contains("accepted-risk") && page.body.contains(ALICE),
        "{}",
        page.body
    );

    // The team may override the critical one through the desk's API too (its own limits).
    let r = post(alice_critical, accept(365), As::Team).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.store
            .finding(alice_critical)
            .await
            .unwrap()
            .unwrap()
            .overridden
            .unwrap()
            .made_by,
        "security-team"
    );

    // Alice removes hers: 204, then 404 for an override that is gone; Bob's stays 403.
    let del = |id: i64, who| {
        let app = &app;
        async move {
            app.call(
                "DELETE",
                &format!("/api/v1/desk/findings/{id}/override"),
                who,
                &[],
                None,
                Vec::new(),
            )
            .await
        }
    };
    assert_eq!(
        del(alice_high, As::Session(&alice)).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(
        app.store
            .finding(alice_high)
            .await
            .unwrap()
            .unwrap()
            .overridden
            .is_none()
    );
    assert_eq!(
        del(alice_high, As::Session(&alice)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        del(bob_high, As::Session(&alice)).await.status,
        StatusCode::FORBIDDEN
    );
    let log = app.store.audit_log(1).await.unwrap();
    assert_eq!(
        (log[0].actor.as_str(), log[0].action.as_str()),
        (ALICE, "override-cleared")
    );
}

async fn the_desk_form_overrides_and_clears(kind: Kind) {
    let app = app(kind, "smtp://127.0.0.1:9", "http://registry.example.ac.jp").await;
    let (alice_high, alice_critical, _) = seed(&app).await;
    let alice = app.session(ALICE).await;
    let page = app.get("/desk", As::Session(&alice)).await;
    // A form under the high finding, none under the critical one.
    assert!(
        page.body
            .contains(&format!("action=\"/desk/findings/{alice_high}/override\"")),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&format!(
            "action=\"/desk/findings/{alice_critical}/override\""
        )),
        "{}",
        page.body
    );
    let form_ct = Some("application/x-www-form-urlencoded");
    let submit = |path: String, fields: Vec<(&'static str, String)>| {
        let app = &app;
        let alice = &alice;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.call("POST", &path, As::Session(alice), &[], form_ct, form(&f))
                .await
        }
    };
    // A form with a stale CSRF token is refused; the right one saves and sends back to /desk.
    let r = submit(
        format!("/desk/findings/{alice_high}/override"),
        vec![
            ("csrf", "stale".into()),
            ("kind", "false-positive".into()),
            ("reason", "the <b>scanner</b> hit the NAT".into()),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = submit(
        format!("/desk/findings/{alice_high}/override"),
        vec![
            ("csrf", alice.csrf.clone()),
            ("kind", "false-positive".into()),
            ("until", String::new()),
            ("reason", "the <b>scanner</b> hit the NAT".into()),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers.get("location").unwrap(), "/desk");
    let o = app
        .store
        .finding(alice_high)
        .await
        .unwrap()
        .unwrap()
        .overridden
        .unwrap();
    assert_eq!(
        (o.kind.as_str(), o.made_by.as_str()),
        ("false-positive", ALICE)
    );
    // The page shows it, escaped, with a button to remove it.
    let page = app.get("/desk", As::Session(&alice)).await;
    assert!(
        page.body
            .contains("the &lt;b&gt;scanner&lt;/b&gt; hit the NAT")
            && !page.body.contains("<b>scanner</b>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Remove the override"));
    // The critical one through the form: 403 too.
    let r = submit(
        format!("/desk/findings/{alice_critical}/override"),
        vec![
            ("csrf", alice.csrf.clone()),
            ("kind", "false-positive".into()),
            ("reason", "no".into()),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = submit(
        format!("/desk/findings/{alice_high}/override/clear"),
        vec![("csrf", alice.csrf.clone())],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        app.store
            .finding(alice_high)
            .await
            .unwrap()
            .unwrap()
            .overridden
            .is_none()
    );
}
