//! Who sees what at the desk: every desk endpoint and page for anonymous callers, the wrong
//! administrator, the right one and the security team, on both backends.

mod desk_support;

use axum::http::StatusCode;
use desk_support::{As, DeskApp, app, common::Kind, host, network};
use relayguard_core::scan::HostResult;
use relayguard_registry::SweepMeta;
use relayguard_registry::model::Role;
use serde_json::{Value, json};

const ALICE: &str = "alice@lab.example.ac.jp";
const BOB: &str = "bob@lab.example.ac.jp";
const OWNER: &str = "owner@net.example.ac.jp";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    desk_pages_and_api_by_caller,
    desk_admins_are_the_teams,
    team_changes_are_in_the_history
);

/// Alice has 10.1.0.10; Bob has 10.2.0.20; the owner of 10.9.0.0/24 has Bob's 10.9.0.5 in his
/// block and an open relay nobody registered at 10.9.0.66.
async fn seed(app: &DeskApp) {
    let s = &app.store;
    s.add_host(&host(
        "10.1.0.10",
        "mx.alice.example.ac.jp",
        Role::MailDirect,
        ALICE,
    ))
    .await
    .unwrap();
    s.add_host(&host(
        "10.2.0.20",
        "mx.bob.example.ac.jp",
        Role::MailViaGateway,
        BOB,
    ))
    .await
    .unwrap();
    s.add_host(&host(
        "10.9.0.5",
        "lab.bob.example.ac.jp",
        Role::InternalOnly,
        BOB,
    ))
    .await
    .unwrap();
    s.add_network(&network("10.9.0.0/24", OWNER)).await.unwrap();
    let result: HostResult = serde_json::from_value(json!({
        "address": "10.9.0.66", "port": 25, "source": "198.19.0.1", "state": "open",
        "smtp": { "banner": "220 mx ESMTP postfix", "mta": "postfix", "starttls": false },
        "tests": [],
        "findings": [{
            "kind": "open-relay", "severity": "critical",
            "summary": "accepted 1 of 16 relay tests without authentication (plain-external)",
            "evidence": { "relay_strength": "external", "tests": ["plain-external"], "transcript": [] }
        }],
        "transcript": { "lines": [] },
        "elapsed_ms": 42
    }))
    .expect("valid HostResult JSON");
    let now = relayguard_registry::model::now_unix();
    let meta = SweepMeta {
        vantage: "campus-core".into(),
        targets: vec!["10.9.0.0/24".into()],
        ports: vec![25],
        started_at: now - 5,
        finished_at: now,
    };
    s.record_sweep(&meta, &[result]).await.unwrap();
}

fn addresses(v: &Value) -> Vec<String> {
    v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["address"].as_str().unwrap().to_string())
        .collect()
}

async fn desk_pages_and_api_by_caller(kind: Kind) {
    let app = app(kind, "smtp://127.0.0.1:9", "http://registry.example.ac.jp").await;
    seed(&app).await;
    let alice = app.session(ALICE).await;
    let owner = app.session(OWNER).await;

    // Anonymous: the page sends to /login, the API says 401.
    let r = app.get("/desk", As::Nobody).await;
    assert!(r.status.is_redirection());
    assert_eq!(r.headers.get("location").unwrap(), "/login");
    for p in ["/api/v1/desk/hosts", "/api/v1/desk/hosts/10.1.0.10"] {
        assert_eq!(
            app.get(p, As::Nobody).await.status,
            StatusCode::UNAUTHORIZED,
            "{p}"
        );
    }
    // A forged cookie is nobody.
    let forged = desk_support::Sess {
        secret: "rgs_forged".into(),
        csrf: String::new(),
    };
    assert_eq!(
        app.get("/api/v1/desk/hosts", As::Session(&forged))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Alice: her host only.
    let r = app.get("/api/v1/desk/hosts", As::Session(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(addresses(&v), ["10.1.0.10"]);
    assert!(v["unregistered_findings"].as_array().unwrap().is_empty());
    let page = app.get("/desk", As::Session(&alice)).await;
    assert!(
        page.body.contains("10.1.0.10")
            && !page.body.contains("10.2.0.20")
            && !page.body.contains("10.9.0.66")
    );
    assert_eq!(
        app.get("/api/v1/desk/hosts/10.1.0.10", As::Session(&alice))
            .await
            .status,
        StatusCode::OK
    );
    // The wrong administrator: 403 for Bob's host and for an address in nobody's block alike.
    for a in ["10.2.0.20", "10.9.0.5", "10.9.0.66", "10.200.0.1"] {
        let r = app
            .get(&format!("/api/v1/desk/hosts/{a}"), As::Session(&alice))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{a}: {}", r.body);
    }

    // The block's owner: Bob's host in his block with the others' not, and the unregistered relay.
    let r = app.get("/api/v1/desk/hosts", As::Session(&owner)).await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(addresses(&v), ["10.9.0.5"]);
    let unreg = v["unregistered_findings"].as_array().unwrap();
    assert!(
        !unreg.is_empty() && unreg.iter().all(|f| f["address"] == "10.9.0.66"),
        "{v}"
    );
    let page = app.get("/desk", As::Session(&owner)).await;
    assert!(
        page.body.contains("10.9.0.66") && page.body.contains("Unregistered addresses"),
        "{}",
        page.body
    );
    assert_eq!(
        app.get("/api/v1/desk/hosts/10.9.0.5", As::Session(&owner))
            .await
            .status,
        StatusCode::OK
    );
    // In his block but unregistered: not found (he may know it is not registered).
    assert_eq!(
        app.get("/api/v1/desk/hosts/10.9.0.66", As::Session(&owner))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/desk/hosts/10.1.0.10", As::Session(&owner))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // The security team sees everything, page and API.
    let r = app.get("/api/v1/desk/hosts", As::Team).await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(addresses(&v), ["10.1.0.10", "10.2.0.20", "10.9.0.5"]);
    let page = app.get("/desk", As::Team).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("10.2.0.20") && page.body.contains("10.9.0.66"));
    assert_eq!(
        app.get("/api/v1/desk/hosts/10.2.0.20", As::Team)
            .await
            .status,
        StatusCode::OK
    );
    // Bad input is a clear 400.
    let r = app.get("/api/v1/desk/hosts/not-an-ip", As::Team).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("invalid IP address"), "{}", r.body);
    // A wrong bearer token is 401 even with a valid session next to it: a token is never
    // silently ignored.
    let mut req = axum::http::Request::get("/api/v1/desk/hosts")
        .header("authorization", "Bearer wrong-token-0123456789abcdef")
        .header("cookie", format!("rg_session={}", alice.secret));
    req = req.header("x-csrf-token", alice.csrf.clone());
    let r = app.send(req.body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn desk_admins_are_the_teams(kind: Kind) {
    let app = app(kind, "smtp://127.0.0.1:9", "http://registry.example.ac.jp").await;
    seed(&app).await;
    let alice = app.session(ALICE).await;
    let body =
        json!({ "email": "Carol@Soc.Example.ac.jp", "name": "Carol", "lang": "ja", "by": "soc" })
            .to_string();
    let json_ct = Some("application/json");
    for (who, want) in [
        (As::Nobody, StatusCode::UNAUTHORIZED),
        (As::Session(&alice), StatusCode::FORBIDDEN),
    ] {
        assert_eq!(app.get("/api/v1/desk-admins", who).await.status, want);
        assert_eq!(
            app.call(
                "POST",
                "/api/v1/desk-admins",
                who,
                &[],
                json_ct,
                body.clone()
            )
            .await
            .status,
            want
        );
        assert_eq!(
            app.call(
                "DELETE",
                "/api/v1/desk-admins/carol@soc.example.ac.jp",
                who,
                &[],
                None,
                Vec::new()
            )
            .await
            .status,
            want
        );
    }
    assert!(app.store.list_desk_admins().await.unwrap().is_empty());
    // The team adds Carol (lower-cased), who is then known to the desk; bad input is a 400.
    let r = app
        .call("POST", "/api/v1/desk-admins", As::Team, &[], json_ct, body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let known = app
        .store
        .known_admin("carol@soc.example.ac.jp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(known.lang, relayguard_registry::model::Lang::Ja);
    let r = app
        .call(
            "POST",
            "/api/v1/desk-admins",
            As::Team,
            &[],
            json_ct,
            json!({ "email": "nope", "by": "soc" }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("invalid e-mail address"), "{}", r.body);
    let r = app.get("/api/v1/desk-admins", As::Team).await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v[0]["email"], "carol@soc.example.ac.jp");
    assert_eq!(v[0]["added_by"], "soc");
    let r = app
        .call(
            "DELETE",
            "/api/v1/desk-admins/carol@soc.example.ac.jp?by=soc",
            As::Team,
            &[],
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        app.store
            .known_admin("carol@soc.example.ac.jp")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.call(
            "DELETE",
            "/api/v1/desk-admins/carol@soc.example.ac.jp",
            As::Team,
            &[],
            None,
            Vec::new()
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // Both changes are in the audit log, with who made them.
    let log = app.store.audit_log(2).await.unwrap();
    let actions: Vec<_> = log
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("desk-admin-removed", "soc"), ("desk-admin-added", "soc")]
    );
}

/// Registrations changed through the team's API are in the history too, with before and after.
async fn team_changes_are_in_the_history(kind: Kind) {
    let app = app(kind, "smtp://127.0.0.1:9", "http://registry.example.ac.jp").await;
    let json_ct = Some("application/json");
    let body =
        json!({ "address": "10.5.0.1", "hostname": "mx.five.example.ac.jp", "role": "mail-direct",
                       "admin_name": "Alice", "admin_email": ALICE })
        .to_string();
    let r = app
        .call("POST", "/api/v1/hosts", As::Team, &[], json_ct, body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .call(
            "PATCH",
            "/api/v1/hosts/10.5.0.1",
            As::Team,
            &[],
            json_ct,
            json!({ "role": "mail-via-gateway" }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // An update that changes nothing leaves no entry.
    app.call(
        "PATCH",
        "/api/v1/hosts/10.5.0.1",
        As::Team,
        &[],
        json_ct,
        json!({ "role": "mail-via-gateway" }).to_string(),
    )
    .await;
    let alice = app.session(ALICE).await;
    let r = app
        .get("/api/v1/desk/hosts/10.5.0.1/history", As::Session(&alice))
        .await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let h = v.as_array().unwrap();
    assert_eq!(h.len(), 2, "{v}");
    assert_eq!(h[0]["action"], "registration-changed");
    assert_eq!(h[0]["actor"], "security-team");
    assert_eq!(h[0]["detail"]["before"]["role"], "mail-direct");
    assert_eq!(h[0]["detail"]["after"]["role"], "mail-via-gateway");
    assert_eq!(h[1]["action"], "registration-created");
    // The team's host page shows the same history, escaped.
    let r = app
        .call(
            "PATCH",
            "/api/v1/hosts/10.5.0.1",
            As::Team,
            &[],
            json_ct,
            json!({ "note": "<script>x</script>" }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = app.get("/hosts/10.5.0.1", As::Team).await;
    assert_eq!(page.status, StatusCode::OK);
    let history = page
        .body
        .split("Registration history")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", page.body));
    assert_eq!(
        history.matches("registration-changed").count(),
        2,
        "{history}"
    );
    assert!(history.contains("registration-created"), "{history}");
    assert!(
        history.contains("&lt;script&gt;x&lt;/script&gt;"),
        "{history}"
    );
    assert!(!page.body.contains("<script>x"), "{}", page.body);
    let page = app.get("/hosts/10.5.0.1", As::Session(&alice)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            "DELETE",
            "/api/v1/hosts/10.5.0.1",
            As::Team,
            &[],
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let h = app.store.registration_history("10.5.0.1").await.unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h[0].action, "registration-removed");
    let detail: Value = serde_json::from_str(&h[0].detail).unwrap();
    assert_eq!(detail["before"]["address"], "10.5.0.1");
    assert!(detail["after"].is_null());
}
