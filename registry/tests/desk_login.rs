//! The desk's sign-in end to end: a link mailed through a real Postfix (parsed back from its
//! Maildir), the confirm page, the session cookie, CSRF on every form, sign-out, links used twice
//! or expired, no enumeration of known addresses, and the rate limits.

mod desk_support;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use desk_support::{As, DeskApp, FORM, app, common::Kind, form, host, network};
use mailparse::MailHeaderMap;
use relayguard_registry::model::{Lang, Role, now_unix};
use relayguard_registry::server::Peer;
use relayguard_registry::store::DeskAdmin;
use relayguard_testkit::Postfix;

const ALICE: &str = "alice@lab.example.ac.jp";
const BOB: &str = "bob@lab.example.ac.jp";
const CAROL: &str = "carol@soc.example.ac.jp";
const NOBODY: &str = "nobody@lab.example.ac.jp";
const DOMAINS: &[&str] = &["lab.example.ac.jp", "soc.example.ac.jp"];
const BASE: &str = "http://registry.example.ac.jp:8025";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Kind::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Kind::Postgres).await } )* }
    };
}

both!(
    sign_in_by_mailed_link,
    links_used_twice_expired_or_unknown,
    sign_in_requests_are_rate_limited,
);

/// A parsed mail: recipient, subject, text part.
struct Mail {
    delivered_to: String,
    subject: String,
    text: String,
}

fn parse(raw: &[u8]) -> Mail {
    let m = mailparse::parse_mail(raw).unwrap();
    let text = m
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .map(|p| p.get_body().unwrap())
        .unwrap_or_default();
    Mail {
        delivered_to: m
            .headers
            .get_first_value("Delivered-To")
            .unwrap_or_default(),
        subject: m.headers.get_first_value("Subject").unwrap_or_default(),
        text,
    }
}

/// The sign-in link in a mail's text.
fn link_in(text: &str) -> String {
    let at = text
        .find(&format!("{BASE}/login/"))
        .expect("a sign-in link");
    text[at..].split_whitespace().next().unwrap().to_string()
}

/// Asks for a link for `email` through the form, as a browser does (cookie from the form page).
async fn ask(app: &DeskApp, email: &str) -> desk_support::Resp {
    let page = app.get("/login", As::Nobody).await;
    assert_eq!(page.status, StatusCode::OK);
    let pre = page.cookie("rg_pre").expect("the form sets its cookie");
    let csrf = page.csrf_field();
    app.call(
        "POST",
        "/login",
        As::Nobody,
        &[("rg_pre", &pre)],
        FORM,
        form(&[("csrf", &csrf), ("email", email)]),
    )
    .await
}

async fn seed(app: &DeskApp) {
    let s = &app.store;
    let mut a = host("10.1.0.10", "mx.lab.example.ac.jp", Role::MailDirect, ALICE);
    a.admin_lang = Some(Lang::Ja);
    s.add_host(&a).await.unwrap();
    s.add_host(&host(
        "10.2.0.20",
        "mx.bob.example.ac.jp",
        Role::MailViaGateway,
        BOB,
    ))
    .await
    .unwrap();
    s.add_network(&network("10.3.0.0/24", BOB)).await.unwrap();
    s.add_desk_admin(
        &DeskAdmin {
            email: CAROL.into(),
            name: "Carol".into(),
            lang: None,
            added_by: String::new(),
            added_at: 0,
        },
        "security-team",
    )
    .await
    .unwrap();
}

async fn sign_in_by_mailed_link(kind: Kind) {
    let sink = Postfix::start_maildir_sink(DOMAINS);
    let app = app(kind, &sink.smtp_url(), BASE).await;
    seed(&app).await;

    // The form page: a double-submit cookie, HttpOnly and SameSite=Strict, not Secure over http.
    let page = app.get("/login", As::Nobody).await;
    let set = page.set_cookies().join("\n");
    assert!(
        set.contains("rg_pre=") && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    // The form without its cookie (as another site would post it) is refused, nothing recorded.
    let r = app
        .call(
            "POST",
            "/login",
            As::Nobody,
            &[],
            FORM,
            form(&[("csrf", &page.csrf_field()), ("email", ALICE)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // A malformed address gets a clear message.
    let r = ask(&app, "alice at lab").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("is not a valid e-mail address"),
        "{}",
        r.body
    );

    // Unknown and known addresses get the same answer.
    let unknown = ask(&app, NOBODY).await;
    let known = ask(&app, ALICE).await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(
        unknown.body.replace(NOBODY, "X"),
        known.body.replace(ALICE, "X")
    );
    // Case does not matter: the address is compared lower-cased; a hand-added admin gets one too.
    assert_eq!(
        ask(&app, &CAROL.to_uppercase()).await.status,
        StatusCode::OK
    );

    tokio::task::block_in_place(|| sink.wait_for(2));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let msgs: Vec<Mail> = sink.messages().iter().map(|m| parse(m)).collect();
    assert_eq!(
        msgs.len(),
        2,
        "one link each for Alice and Carol, none for the unknown address"
    );
    let alice = msgs
        .iter()
        .find(|m| m.delivered_to == ALICE)
        .expect("Alice's link");
    let carol = msgs
        .iter()
        .find(|m| m.delivered_to == CAROL)
        .expect("Carol's link");
    // Alice is written to in Japanese (her registration's language), Carol in English.
    assert_eq!(alice.subject, "メールサーバ登録窓口へのサインインリンク");
    assert!(alice.text.contains("15 分以内"), "{}", alice.text);
    assert!(carol.subject.contains("sign-in link"), "{}", carol.subject);
    let link = link_in(&alice.text);
    assert_ne!(link, link_in(&carol.text));
    let path = link.strip_prefix(BASE).unwrap().to_string();
    let secret = path.trim_start_matches("/login/").to_string();
    assert!(secret.len() >= 64, "{secret}");
    // Only the link's SHA-256 is stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM desk_login_tokens")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 64 && !secret.contains(h.as_str()) && h != &secret)
    );

    // Fetching the link (as a mail scanner does) changes nothing: twice, and it still works.
    for _ in 0..2 {
        let r = app.get(&path, As::Nobody).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains("Sign in to the registration desk as") && r.body.contains(ALICE),
            "{}",
            r.body
        );
    }
    let confirm = app.get(&path, As::Nobody).await;
    let pre = confirm.cookie("rg_pre").unwrap();
    // The button's POST without the form's cookie is refused (login CSRF) and spends nothing.
    let r = app
        .call(
            "POST",
            &path,
            As::Nobody,
            &[],
            FORM,
            form(&[("csrf", &confirm.csrf_field())]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            "POST",
            &path,
            As::Nobody,
            &[("rg_pre", &pre)],
            FORM,
            form(&[("csrf", &confirm.csrf_field())]),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers.get("location").unwrap(), "/desk");
    let session = r.cookie("rg_session").expect("a session cookie");
    let set = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("rg_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    let ids: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM desk_sessions")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], session);

    // Signed in: the desk shows Alice's host, not Bob's; a sign-out form with a CSRF token.
    let cookie = [("rg_session", session.as_str())];
    let desk = app
        .call("GET", "/desk", As::Nobody, &cookie, None, Vec::new())
        .await;
    assert_eq!(desk.status, StatusCode::OK, "{}", desk.body);
    assert!(
        desk.body.contains("10.1.0.10") && desk.body.contains(ALICE),
        "{}",
        desk.body
    );
    assert!(!desk.body.contains("10.2.0.20"), "{}", desk.body);
    let csrf = desk.csrf_field();
    // The security team's pages and API stay the team's.
    for p in [
        "/hosts",
        "/findings",
        "/api/v1/hosts",
        "/api/v1/desk-admins",
    ] {
        let r = app
            .call("GET", p, As::Nobody, &cookie, None, Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}: {}", r.body);
    }

    // Sign-out needs the session's CSRF token.
    let r = app
        .call(
            "POST",
            "/logout",
            As::Nobody,
            &cookie,
            FORM,
            form(&[("csrf", "forged")]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.call("GET", "/desk", As::Nobody, &cookie, None, Vec::new())
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .call(
            "POST",
            "/logout",
            As::Nobody,
            &cookie,
            FORM,
            form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.starts_with("rg_session=;") && c.contains("Max-Age=0"))
    );
    // The old cookie is worth nothing now: back to the sign-in page.
    let r = app
        .call("GET", "/desk", As::Nobody, &cookie, None, Vec::new())
        .await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers.get("location").unwrap(), "/login");
    let r = app
        .call(
            "GET",
            "/api/v1/desk/hosts",
            As::Nobody,
            &cookie,
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Served as https://…, the cookies are Secure.
    let tls = desk_support::app(kind, &sink.smtp_url(), "https://registry.example.ac.jp").await;
    let set = tls.get("/login", As::Nobody).await.set_cookies().join("\n");
    assert!(set.contains("; Secure"), "{set}");
}

async fn links_used_twice_expired_or_unknown(kind: Kind) {
    // Nothing is mailed here: the links are issued through the store.
    let app = app(kind, "smtp://127.0.0.1:9", BASE).await;
    seed(&app).await;
    let now = now_unix();
    let fresh = app.store.create_login_token(ALICE, now, 900).await.unwrap();
    let old = app
        .store
        .create_login_token(ALICE, now - 16 * 60, 900)
        .await
        .unwrap();

    // Presses the button as a browser would: with the cookie of a form page of the desk.
    let redeem = |secret: String| {
        let app = &app;
        async move {
            let page = app.get("/login", As::Nobody).await;
            let pre = page.cookie("rg_pre").unwrap();
            app.call(
                "POST",
                &format!("/login/{secret}"),
                As::Nobody,
                &[("rg_pre", &pre)],
                FORM,
                form(&[("csrf", &page.csrf_field())]),
            )
            .await
        }
    };
    assert_eq!(redeem(fresh.clone()).await.status, StatusCode::SEE_OTHER);
    // Twice: a page saying so, on GET and on POST; no second session.
    let r = app.get(&format!("/login/{fresh}"), As::Nobody).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.body.contains("already been used"), "{}", r.body);
    let r = redeem(fresh).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.body.contains("already been used"), "{}", r.body);
    assert!(r.cookie("rg_session").is_none());
    // Expired.
    let r = app.get(&format!("/login/{old}"), As::Nobody).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.body.contains("expired"), "{}", r.body);
    let r = redeem(old).await;
    assert!(
        r.body.contains("expired") && r.cookie("rg_session").is_none(),
        "{}",
        r.body
    );
    // Never issued.
    let r = app.get("/login/rgl_0000", As::Nobody).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("not valid"), "{}", r.body);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM desk_sessions")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);

    // Two browsers pressing the button of one link at once: one session.
    let link = app.store.create_login_token(ALICE, now, 900).await.unwrap();
    let (a, b) = tokio::join!(
        app.store.redeem_login_link(&link, now, 3600),
        app.store.redeem_login_link(&link, now, 3600)
    );
    assert_eq!(
        [a.unwrap().is_ok(), b.unwrap().is_ok()]
            .iter()
            .filter(|ok| **ok)
            .count(),
        1
    );
}

/// A sign-in request from a given client address.
async fn ask_from(app: &DeskApp, email: &str, client: &str) -> StatusCode {
    let page = app.get("/login", As::Nobody).await;
    let pre = page.cookie("rg_pre").unwrap();
    let mut req = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("rg_pre={pre}"))
        .body(Body::from(form(&[
            ("csrf", &page.csrf_field()),
            ("email", email),
        ])))
        .unwrap();
    let addr: SocketAddr = format!("{client}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(Peer(addr)));
    app.send(req).await.status
}

async fn sign_in_requests_are_rate_limited(kind: Kind) {
    let sink = Postfix::start_maildir_sink(DOMAINS);
    let app = app(kind, &sink.smtp_url(), BASE).await;
    seed(&app).await;
    // Five an hour per address, known or not, from any mix of clients; the sixth is refused.
    for (i, email) in [ALICE, NOBODY].iter().enumerate() {
        for n in 0..5 {
            let client = format!("192.0.2.{}", 10 * i + n + 1);
            assert_eq!(
                ask_from(&app, email, &client).await,
                StatusCode::OK,
                "{email} #{n}"
            );
        }
        assert_eq!(
            ask_from(&app, email, "192.0.2.99").await,
            StatusCode::TOO_MANY_REQUESTS,
            "{email}"
        );
    }
    // Exactly five links reached Alice, none beyond the limit.
    tokio::task::block_in_place(|| sink.wait_for(5));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 5);
    // Thirty an hour per client, whatever the addresses; other clients are not affected.
    for n in 0..30 {
        let email = format!("user{n}@lab.example.ac.jp");
        assert_eq!(
            ask_from(&app, &email, "198.51.100.7").await,
            StatusCode::OK,
            "#{n}"
        );
    }
    assert_eq!(
        ask_from(&app, "user99@lab.example.ac.jp", "198.51.100.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        ask_from(&app, "user99@lab.example.ac.jp", "198.51.100.8").await,
        StatusCode::OK
    );
    // A request an hour old no longer counts.
    sqlx::query("UPDATE desk_login_requests SET at = at - 3601")
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(ask_from(&app, ALICE, "192.0.2.99").await, StatusCode::OK);
}
