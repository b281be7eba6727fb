//! Applications at the desk: the form and API, validation, the decision from the checks, the
//! registration made in the same write with its history, cancelling, the team's approval of held
//! applications, access for every caller, and the outcome mails through a real Postfix.
//!
//! The checks here are scripted through the registry's `ApplicationChecks` boundary (the
//! registry does not depend on the scanner): these tests prove what the registry does with their
//! results. The real checks (nsd, Postfix personalities) are the binary's and are tested there.

mod desk_support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use desk_support::{As, DeskApp, FORM, app_with, common::Kind, form, host, network};
use mailparse::MailHeaderMap;
use relayguard_registry::desk::Desk;
use relayguard_registry::desk::applications::{
    ApplicationChecks, AuditFinding, BoxFuture, CheckResult, DnsRequest,
};
use relayguard_registry::model::{HostStatus, Lang, Role};
use relayguard_testkit::Postfix;
use serde_json::{Value, json};

const ALICE: &str = "alice@lab.example.ac.jp";
const BOB: &str = "bob@lab.example.ac.jp";
const DOMAINS: &[&str] = &["lab.example.ac.jp"];
const BASE: &str = "http://registry.example.ac.jp";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(applications_end_to_end, held_applications_wait_for_the_team);

/// Scripted checks: DNS fails for host names listed in `bad_dns`; the relay audit of an address
/// answers what `audits` says (clean when absent). Every call is recorded.
#[derive(Default)]
struct Scripted {
    bad_dns: Vec<String>,
    audits: HashMap<IpAddr, Result<Vec<AuditFinding>, String>>,
    calls: Mutex<Vec<String>>,
}

impl ApplicationChecks for Scripted {
    fn dns<'a>(&'a self, req: &'a DnsRequest) -> BoxFuture<'a, Vec<CheckResult>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!(
                "dns {} {} {:?}",
                req.address, req.hostname, req.mx_domain
            ));
            let ok = !self.bad_dns.contains(&req.hostname);
            let mut out = vec![
                CheckResult {
                    name: "forward".into(),
                    passed: ok,
                    detail: if ok {
                        format!("{} -> {}", req.hostname, req.address)
                    } else {
                        format!("{} has no A/AAAA record", req.hostname)
                    },
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
                    detail: format!("MX {d} -> {}", req.hostname),
                });
            }
            out
        })
    }

    fn relay_audit<'a>(
        &'a self,
        address: IpAddr,
        _: &'a str,
        lang: Lang,
    ) -> BoxFuture<'a, Result<Vec<AuditFinding>, String>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push(format!("audit {address} {}", lang.as_str()));
            self.audits.get(&address).cloned().unwrap_or(Ok(Vec::new()))
        })
    }
}

fn open_relay() -> AuditFinding {
    AuditFinding {
        kind: "open-relay".into(),
        severity: "critical".into(),
        summary: "accepted 1 of 16 relay tests without authentication (plain-external)".into(),
        fix: "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination".into(),
    }
}

fn scripted() -> Arc<Scripted> {
    let mut audits = HashMap::new();
    audits.insert("10.1.0.40".parse().unwrap(), Ok(vec![open_relay()]));
    audits.insert(
        "10.1.0.41".parse().unwrap(),
        Err("10.1.0.41 is excluded from audits".to_string()),
    );
    Arc::new(Scripted {
        bad_dns: vec!["nodns.lab.example.ac.jp".into()],
        audits,
        calls: Mutex::default(),
    })
}

async fn seed(app: &DeskApp) {
    app.store
        .add_host(&host(
            "10.2.0.20",
            "mx.bob.example.ac.jp",
            Role::MailViaGateway,
            BOB,
        ))
        .await
        .unwrap();
    app.store
        .add_network(&network("10.1.0.0/24", ALICE))
        .await
        .unwrap();
    app.store
        .add_network(&network("10.2.0.0/24", BOB))
        .await
        .unwrap();
}

fn apply_json(address: &str, hostname: &str, role: &str, lang: &str) -> String {
    json!({ "address": address, "hostname": hostname, "role": role, "contact_name": "Alice",
            "contact_email": ALICE, "lang": lang })
    .to_string()
}

struct Mail {
    subject: String,
    text: String,
}

fn mails(sink: &Postfix, n: usize) -> Vec<Mail> {
    tokio::task::block_in_place(|| sink.wait_for(n));
    std::thread::sleep(std::time::Duration::from_millis(300));
    sink.messages()
        .iter()
        .map(|raw| {
            let m = mailparse::parse_mail(raw).unwrap();
            let text = m
                .subparts
                .iter()
                .find(|p| p.ctype.mimetype == "text/plain")
                .map(|p| p.get_body().unwrap())
                .unwrap_or_default();
            Mail {
                subject: m.headers.get_first_value("Subject").unwrap_or_default(),
                text,
            }
        })
        .collect()
}

async fn count(app: &DeskApp, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

async fn applications_end_to_end(kind: Kind) {
    let sink = Postfix::start_maildir_sink(DOMAINS);
    let checks = scripted();
    let c = checks.clone();
    let app = app_with(kind, &sink.smtp_url(), BASE, move |d: Desk| {
        d.with_checks(c, false)
    })
    .await;
    seed(&app).await;
    let alice = app.session(ALICE).await;
    let bob = app.session(BOB).await;
    let json_ct = Some("application/json");

    // The form, with the contact prefilled; anonymous callers go to the sign-in page.
    let page = app.get("/desk/apply", As::Session(&alice)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!("value=\"{ALICE}\"")),
        "{}",
        page.body
    );
    let r = app.get("/desk/apply", As::Nobody).await;
    assert_eq!(r.headers.get("location").unwrap(), "/login");

    // Every field validated with a clear message; nothing is written.
    for (fields, message) in [
        (
            vec![
                ("address", "10.1.0.300"),
                ("hostname", "a.lab.example.ac.jp"),
                ("role", "mail-direct"),
            ],
            "address: invalid IP address",
        ),
        (
            vec![
                ("address", "10.1.0.30"),
                ("hostname", "bad name"),
                ("role", "mail-direct"),
            ],
            "host name: invalid host name",
        ),
        (
            vec![
                ("address", "10.1.0.30"),
                ("hostname", "a.lab.example.ac.jp"),
                ("role", "non-mail"),
            ],
            "role: non-mail is not applied for",
        ),
        (
            vec![
                ("address", "10.1.0.30"),
                ("hostname", "a.lab.example.ac.jp"),
                ("role", "relay"),
            ],
            "role:",
        ),
        (
            vec![
                ("address", "10.1.0.30"),
                ("hostname", "a.lab.example.ac.jp"),
                ("role", "mail-direct"),
                ("contact_email", "alice"),
            ],
            "contact e-mail: invalid e-mail address",
        ),
        (
            vec![
                ("address", "10.1.0.30"),
                ("hostname", "a.lab.example.ac.jp"),
                ("role", "mail-direct"),
                ("lang", "fr"),
            ],
            "language: unknown language",
        ),
        (
            vec![
                ("address", "10.1.0.30"),
                ("hostname", "localhost"),
                ("role", "mail-direct"),
            ],
            "mail domain:",
        ),
    ] {
        let mut all = vec![
            ("csrf", alice.csrf.as_str()),
            ("contact_name", "Alice"),
            ("contact_email", ALICE),
        ];
        all.extend(fields.iter().copied());
        let r = app
            .call(
                "POST",
                "/desk/apply",
                As::Session(&alice),
                &[],
                FORM,
                form(&all),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{message}: {}", r.body);
        assert!(r.body.contains(message), "{message}: {}", r.body);
    }
    // Without the session's CSRF token the form is refused.
    let r = app
        .call(
            "POST",
            "/desk/apply",
            As::Session(&alice),
            &[],
            FORM,
            form(&[
                ("csrf", "forged"),
                ("address", "10.1.0.30"),
                ("hostname", "a.lab.example.ac.jp"),
                ("role", "internal-only"),
                ("contact_name", "A"),
                ("contact_email", ALICE),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&app, "desk_applications").await, 0);
    assert!(
        checks.calls.lock().unwrap().is_empty(),
        "no check runs on invalid input"
    );

    // mail-via-gateway through the form: DNS checked (MX of the parent domain), no audit,
    // approved, registered; the result page shows each check.
    let r = app
        .call(
            "POST",
            "/desk/apply",
            As::Session(&alice),
            &[],
            FORM,
            form(&[
                ("csrf", &alice.csrf),
                ("address", "10.1.0.30"),
                ("hostname", "MX30.lab.example.ac.jp."),
                ("role", "mail-via-gateway"),
                ("contact_name", "Alice"),
                ("contact_email", ALICE),
                ("lang", "ja"),
            ]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let status_path = r
        .headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let page = app.get(&status_path, As::Session(&alice)).await;
    assert!(
        page.body.contains("approved")
            && page.body.contains("mx30.lab.example.ac.jp -&gt; 10.1.0.30")
            && page.body.contains("MX lab.example.ac.jp"),
        "{}",
        page.body
    );
    assert_eq!(
        checks.calls.lock().unwrap().clone(),
        ["dns 10.1.0.30 mx30.lab.example.ac.jp Some(\"lab.example.ac.jp\")"]
    );
    let h = app
        .store
        .get_host("10.1.0.30")
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(
        (h.role, h.admin_email.as_str(), h.status),
        (Role::MailViaGateway, ALICE, HostStatus::Active)
    );

    // mail-direct with an open relay: needs changes, with the finding and its fix; nothing registered.
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&alice),
            &[],
            json_ct,
            apply_json("10.1.0.40", "mx40.lab.example.ac.jp", "mail-direct", "en"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "needs-changes");
    assert_eq!(v["findings"][0]["kind"], "open-relay");
    let audit = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "relay-audit")
        .unwrap();
    assert_eq!(audit["passed"], false);
    assert!(app.store.get_host("10.1.0.40").await.unwrap().is_none());
    // A host that cannot be audited is not approved either; nor one whose DNS disagrees.
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&alice),
            &[],
            json_ct,
            apply_json("10.1.0.41", "mx41.lab.example.ac.jp", "mail-direct", "en"),
        )
        .await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "needs-changes");
    assert!(
        v["checks"].to_string().contains("excluded from audits"),
        "{v}"
    );
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&alice),
            &[],
            json_ct,
            apply_json(
                "10.1.0.42",
                "nodns.lab.example.ac.jp",
                "internal-only",
                "en",
            ),
        )
        .await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "needs-changes");
    assert_eq!(
        v["checks"].as_array().unwrap().len(),
        2,
        "internal-only needs no MX: {v}"
    );
    // A clean mail-direct host: approved and registered for a firewall pass.
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&alice),
            &[],
            json_ct,
            apply_json("10.1.0.50", "mx50.lab.example.ac.jp", "mail-direct", "en"),
        )
        .await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    let approved_id = v["id"].as_i64().unwrap();
    assert_eq!(
        app.store.get_host("10.1.0.50").await.unwrap().unwrap().role,
        Role::MailDirect
    );
    // The API needs the session's CSRF token in a header.
    let mut no_csrf = desk_support::Sess {
        secret: alice.secret.clone(),
        csrf: "wrong".into(),
    };
    no_csrf.csrf.push('x');
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&no_csrf),
            &[],
            json_ct,
            apply_json("10.1.0.51", "mx51.lab.example.ac.jp", "mail-direct", "en"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Outcome mails: Japanese for the first (her language on it), English for the others.
    let got = mails(&sink, 5);
    assert_eq!(got.len(), 5);
    let ja = got
        .iter()
        .find(|m| m.subject.contains("10.1.0.30"))
        .unwrap();
    assert!(ja.subject.contains("承認されました"), "{}", ja.subject);
    assert!(ja.text.contains("[OK] mx:"), "{}", ja.text);
    let relay = got
        .iter()
        .find(|m| m.subject.contains("10.1.0.40"))
        .unwrap();
    assert!(
        relay.subject.ends_with("needs changes"),
        "{}",
        relay.subject
    );
    assert!(
        relay.text.contains("open-relay (critical)")
            && relay.text.contains("smtpd_relay_restrictions")
            && relay.text.contains("[NG] relay-audit"),
        "{}",
        relay.text
    );
    assert!(
        relay.text.contains(&format!("{BASE}/desk/applications/")),
        "{}",
        relay.text
    );

    // The desk lists her applications with their status; Bob's lists none of them.
    let desk = app.get("/desk", As::Session(&alice)).await;
    assert!(
        desk.body
            .contains(&format!("href=\"/desk/applications/{approved_id}\""))
            && desk.body.contains("needs-changes"),
        "{}",
        desk.body
    );
    let desk = app.get("/desk", As::Session(&bob)).await;
    assert!(desk.body.contains("No applications."), "{}", desk.body);

    // Access: anonymous 401; Bob cannot see, cancel or apply over Alice's; the team sees all.
    let path = format!("/api/v1/applications/{approved_id}");
    assert_eq!(
        app.get(&path, As::Nobody).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/applications", As::Nobody).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&path, As::Session(&bob)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&status_path, As::Session(&bob)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call(
            "POST",
            &format!("{path}/cancel"),
            As::Session(&bob),
            &[],
            None,
            Vec::new()
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&bob),
            &[],
            json_ct,
            apply_json("10.1.0.50", "mx50.lab.example.ac.jp", "internal-only", "en"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let mine: Value = serde_json::from_str(
        &app.get("/api/v1/applications", As::Session(&bob))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 0);
    let all: Value =
        serde_json::from_str(&app.get("/api/v1/applications", As::Team).await.body).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 5);
    assert_eq!(app.get(&path, As::Team).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&path, As::Session(&alice)).await.status,
        StatusCode::OK
    );

    // Alice cancels the approved application: the registration is retired, and the history of
    // the registration shows both changes with who and before/after.
    let r = app
        .call(
            "POST",
            &format!("{path}/cancel"),
            As::Session(&alice),
            &[],
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.store
            .get_host("10.1.0.50")
            .await
            .unwrap()
            .unwrap()
            .status,
        HostStatus::Retired
    );
    let r = app
        .call(
            "POST",
            &format!("{path}/cancel"),
            As::Session(&alice),
            &[],
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let hist_path = "/api/v1/desk/hosts/10.1.0.50/history";
    let r = app.get(hist_path, As::Session(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let hist: Value = serde_json::from_str(&r.body).unwrap();
    let hist = hist.as_array().unwrap();
    assert_eq!(hist.len(), 2, "{hist:?}");
    assert_eq!(hist[0]["action"], "registration-changed");
    assert_eq!(hist[0]["actor"], ALICE);
    assert_eq!(hist[0]["detail"]["before"]["status"], "active");
    assert_eq!(hist[0]["detail"]["after"]["status"], "retired");
    assert_eq!(hist[1]["action"], "registration-created");
    assert!(hist[1]["detail"]["before"].is_null());
    assert_eq!(hist[1]["detail"]["after"]["role"], "mail-direct");
    assert_eq!(
        app.get(hist_path, As::Session(&bob)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(hist_path, As::Nobody).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get(hist_path, As::Team).await.status, StatusCode::OK);
}

async fn held_applications_wait_for_the_team(kind: Kind) {
    let checks = scripted();
    let c = checks.clone();
    // No mail is read here: the sink address takes nothing.
    let app = app_with(kind, "smtp://127.0.0.1:9", BASE, move |d: Desk| {
        d.with_checks(c, true)
    })
    .await;
    seed(&app).await;
    let alice = app.session(ALICE).await;
    let json_ct = Some("application/json");
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&alice),
            &[],
            json_ct,
            apply_json("10.1.0.60", "mx60.lab.example.ac.jp", "mail-direct", "en"),
        )
        .await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "held", "{v}");
    let id = v["id"].as_i64().unwrap();
    assert!(app.store.get_host("10.1.0.60").await.unwrap().is_none());
    // Only the team approves.
    let approve = format!("/api/v1/applications/{id}/approve");
    assert_eq!(
        app.call("POST", &approve, As::Session(&alice), &[], None, Vec::new())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call("POST", &approve, As::Nobody, &[], None, Vec::new())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .call("POST", &approve, As::Team, &[], None, Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.store.get_host("10.1.0.60").await.unwrap().unwrap().role,
        Role::MailDirect
    );
    assert_eq!(
        app.call("POST", &approve, As::Team, &[], None, Vec::new())
            .await
            .status,
        StatusCode::CONFLICT
    );
    let hist = app.store.registration_history("10.1.0.60").await.unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].actor, "security-team");
    // A needs-changes application is not approved by hand.
    let r = app
        .call(
            "POST",
            "/api/v1/applications",
            As::Session(&alice),
            &[],
            json_ct,
            apply_json("10.1.0.40", "mx40.lab.example.ac.jp", "mail-direct", "en"),
        )
        .await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "needs-changes");
    let r = app
        .call(
            "POST",
            &format!("/api/v1/applications/{}/approve", v["id"]),
            As::Team,
            &[],
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(app.store.get_host("10.1.0.40").await.unwrap().is_none());
}
