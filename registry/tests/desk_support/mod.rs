//! Shared by the desk tests: the registry's router with a desk, requests with cookies, and
//! sessions opened through the store.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use relayguard_registry::Store;
use relayguard_registry::api::{AppState, router};
use relayguard_registry::desk::{Desk, DeskConfig, SESSION_TTL};
use relayguard_registry::model::{Host, HostStatus, Network, Role, format_date, now_unix, today};
use relayguard_registry::notify::mail::SmtpOptions;
use tower::ServiceExt;

#[path = "../common/mod.rs"]
pub mod common;

/// The security team's token.
pub const TEAM: &str = "desk-team-token-0123456789abcdef";

/// A response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Resp {
    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The value a `Set-Cookie` gives cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            let first = c.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    /// The `value` of the hidden `csrf` field of the page's form.
    pub fn csrf_field(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

/// The registry's router with a desk sending through `smtp` (any URL when nothing is mailed).
pub struct DeskApp {
    pub router: Router,
    pub store: Store,
    pub t: common::TestStore,
}

pub async fn app(kind: common::Kind, smtp: &str, base_url: &str) -> DeskApp {
    app_with(kind, smtp, base_url, |d| d).await
}

/// [`app`], with the desk changed by `f` (e.g. given application checks).
pub async fn app_with(
    kind: common::Kind,
    smtp: &str,
    base_url: &str,
    f: impl FnOnce(Desk) -> Desk,
) -> DeskApp {
    let t = common::open(kind).await;
    let desk = Desk::new(&DeskConfig {
        base_url: base_url.into(),
        from: "relayguard desk <desk@soc.example.ac.jp>".into(),
        smtp: SmtpOptions {
            url: smtp.into(),
            ..SmtpOptions::default()
        },
    })
    .unwrap();
    let desk = f(desk);
    let router = router(AppState {
        store: t.store.clone(),
        admin_tokens: Arc::new(vec![TEAM.to_string()]),
        metrics_tokens: Arc::new(Vec::new()),
    })
    .layer(axum::Extension(Arc::new(desk)));
    DeskApp {
        router,
        store: t.store.clone(),
        t,
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Nobody,
    Team,
    /// A session cookie (and, on POST, its CSRF token in `X-CSRF-Token`).
    Session(&'a Sess),
}

/// A session opened through the store, as a sign-in would.
pub struct Sess {
    pub secret: String,
    pub csrf: String,
}

impl DeskApp {
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// A request with `who`'s credentials; `cookies` are added as given.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        who: As<'_>,
        cookies: &[(&str, &str)],
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        let mut jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match who {
            As::Nobody => {}
            As::Team => req = req.header("authorization", format!("Bearer {TEAM}")),
            As::Session(s) => {
                jar.push(format!("rg_session={}", s.secret));
                req = req.header("x-csrf-token", s.csrf.clone());
            }
        }
        if !jar.is_empty() {
            req = req.header("cookie", jar.join("; "));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        self.send(req.body(Body::from(body.into())).unwrap()).await
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> Resp {
        self.call("GET", path, who, &[], None, Vec::new()).await
    }

    /// Opens a session for `email` the way a sign-in does (link issued, then redeemed), and
    /// reads its CSRF token off the desk page.
    pub async fn session(&self, email: &str) -> Sess {
        let now = now_unix();
        let link = self
            .store
            .create_login_token(email, now, 900)
            .await
            .unwrap();
        let (secret, _) = self
            .store
            .redeem_login_link(&link, now, SESSION_TTL)
            .await
            .unwrap()
            .unwrap();
        let mut s = Sess {
            secret,
            csrf: String::new(),
        };
        let page = self.get("/desk", As::Session(&s)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        s.csrf = page.csrf_field();
        s
    }
}

pub fn host(address: &str, name: &str, role: Role, admin_email: &str) -> Host {
    let d = format_date(today());
    Host {
        admin_lang: None,
        address: address.into(),
        hostname: name.into(),
        role,
        admin_name: admin_email.split('@').next().unwrap().into(),
        admin_email: admin_email.into(),
        note: String::new(),
        registered_on: d.clone(),
        reviewed_on: d,
        review_months: 6,
        status: HostStatus::Active,
    }
}

pub fn network(cidr: &str, owner_email: &str) -> Network {
    Network {
        cidr: cidr.into(),
        owner_name: "Owner".into(),
        owner_email: owner_email.into(),
        note: String::new(),
        owner_lang: None,
    }
}

/// A form body.
pub fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded_like(fields)
}

fn serde_urlencoded_like(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
