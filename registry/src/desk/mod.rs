//! The registration desk: host administrators sign in by a mailed one-time link and see their
//! own registrations and the hosts of their network blocks.
//!
//! * [`login`]: the sign-in pages, the mailed link, sessions and sign-out.
//! * [`home`]: the `/desk` page and the administrator's view in the API.
//! * [`admins`]: the security team's list of administrators added by hand.
//! * [`overrides`]: administrators' accepted risks and false positives on their own hosts.
//!
//! The desk needs to send mail, so it only runs when the server is given a [`Desk`] (an axum
//! `Extension`); without one its pages answer 503. Who is asking is
//! [`crate::api::auth::Asker`]; forms carry the session's CSRF token (see [`DeskForm`]).

pub mod admins;
pub mod applications;
pub mod apply;
pub mod home;
pub mod login;
pub mod overrides;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use maud::{DOCTYPE, Markup, html};

use crate::api::AppState;
use crate::api::auth::{Session, signed_in};
use crate::error::{Error, Result};
use crate::notify::mail::{SmtpOptions, smtp_transport};

/// How long a mailed sign-in link works (seconds).
pub const LINK_TTL: i64 = 15 * 60;
/// How long a session lasts (seconds): a working day.
pub const SESSION_TTL: i64 = 8 * 3600;
/// Sign-in requests per address per hour (known or not, so the limit reveals nothing).
pub const REQUESTS_PER_ADDRESS: i64 = 5;
/// Sign-in requests per client address per hour.
pub const REQUESTS_PER_CLIENT: i64 = 30;

/// What the desk is configured with.
#[derive(Debug, Clone)]
pub struct DeskConfig {
    /// Where administrators reach the registry, e.g. `https://registry.campus.example`: the
    /// links in mails start with it, and an `https` URL makes the cookies `Secure`.
    pub base_url: String,
    /// Sender of the desk's mails (`Name <addr>` or `addr`), as notify's `--from`.
    pub from: String,
    /// The SMTP server, as notify uses it.
    pub smtp: SmtpOptions,
}

/// The running desk: its configuration and the SMTP transport its mails go through.
#[derive(Clone)]
pub struct Desk {
    base_url: String,
    secure: bool,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    checks: Option<Arc<dyn applications::ApplicationChecks>>,
    manual_approval: bool,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("base_url", &self.base_url)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Desk {
    /// Validates the configuration and sets up the SMTP transport.
    pub fn new(config: &DeskConfig) -> Result<Desk> {
        let base = config.base_url.trim().trim_end_matches('/').to_string();
        let secure = if base.starts_with("https://") {
            true
        } else if base.starts_with("http://") {
            false
        } else {
            return Err(Error::Invalid(format!(
                "invalid desk URL {base:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
            )));
        };
        Ok(Desk {
            base_url: base,
            secure,
            from: crate::notify::parse_from(&config.from)?,
            transport: smtp_transport(&config.smtp)?,
            checks: None,
            manual_approval: false,
        })
    }

    /// The same desk taking applications, checked by `checks`; with `manual_approval` an
    /// application that passes every check is held for the security team instead of approved.
    pub fn with_checks(
        mut self,
        checks: Arc<dyn applications::ApplicationChecks>,
        manual_approval: bool,
    ) -> Desk {
        self.checks = Some(checks);
        self.manual_approval = manual_approval;
        self
    }

    /// The checks applications get, when the desk takes applications.
    pub fn checks(&self) -> Option<&Arc<dyn applications::ApplicationChecks>> {
        self.checks.as_ref()
    }

    /// Whether cookies are marked `Secure` (the desk is reached over HTTPS).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS; `max_age` 0
    /// deletes the cookie.
    fn cookie(&self, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
    }
}

/// Extractor: the configured desk, or a 503 page when the server runs without one.
pub struct DeskHere(pub Arc<Desk>);

impl FromRequestParts<AppState> for DeskHere {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        _: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Desk>>()
            .cloned()
            .map(DeskHere)
            .ok_or_else(|| {
                page_with(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Desk not available",
                    html! { p { "The registration desk is not configured on this server (it needs an SMTP server to send sign-in links)." } },
                )
            })
    }
}

/// The page routes of the desk (mounted at `/`).
pub fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::form).post(login::request))
        .route("/login/{token}", get(login::confirm).post(login::redeem))
        .route("/logout", post(login::logout))
        .route("/desk", get(home::page))
        .route("/desk/apply", get(apply::form).post(apply::submit_form))
        .route("/desk/applications/{id}", get(apply::status_page))
        .route("/desk/applications/{id}/cancel", post(apply::cancel_form))
        .route("/desk/findings/{id}/override", post(overrides::form_set))
        .route(
            "/desk/findings/{id}/override/clear",
            post(overrides::form_clear),
        )
}

/// The API routes of the desk (mounted under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/desk/hosts", get(home::api_hosts))
        .route("/desk/hosts/{address}", get(home::api_host))
        .route("/desk/hosts/{address}/history", get(home::api_history))
        .route(
            "/desk/findings/{id}/override",
            post(overrides::api_set).delete(overrides::api_clear),
        )
        .route(
            "/applications",
            get(apply::api_list).post(apply::api_submit),
        )
        .route("/applications/{id}", get(apply::api_get))
        .route("/applications/{id}/cancel", post(apply::api_cancel))
        .route("/applications/{id}/approve", post(apply::api_approve))
        .route("/desk-admins", get(admins::list).post(admins::add))
        .route(
            "/desk-admins/{email}",
            axum::routing::delete(admins::remove),
        )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:60em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
nav a,nav form{margin-right:1em;display:inline}.error{color:#b00}.critical,.high{color:#b00}.medium{color:#a60}";

/// A desk page with a status.
pub(crate) fn page_with(status: StatusCode, title: &str, body: Markup) -> Response {
    page_for(status, title, None, body)
}

/// A desk page; with a session, the navigation offers the desk and sign-out.
pub(crate) fn page_for(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: Markup,
) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="referrer" content="no-referrer";
                title { (title) " — relayguard registration desk" }
                style { (STYLE) }
            }
            body {
                @if let Some(s) = session {
                    nav {
                        a href="/desk" { "My hosts" }
                        span { "Signed in as " (s.email) " " }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf_token());
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    };
    let mut r = (status, Html(page.into_string())).into_response();
    // Pages with one-time links and CSRF tokens are nobody's to cache.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Parses an `application/x-www-form-urlencoded` body into its fields (last one wins).
pub(crate) fn parse_form(body: &[u8]) -> Result<HashMap<String, String>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(|v| v.into_iter().collect())
        .map_err(|e| Error::Invalid(format!("invalid form: {e}")))
}

/// Extractor for the desk's forms: a signed-in administrator whose form carries the session's
/// CSRF token in its `csrf` field, and the form's fields. Without a session it redirects to
/// `/login`; with a wrong token it answers 403.
pub struct DeskForm {
    /// Who posted.
    pub session: Session,
    /// The form's fields.
    pub fields: HashMap<String, String>,
}

impl FromRequest<AppState> for DeskForm {
    type Rejection = Response;
    async fn from_request(
        req: Request,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let Some(session) = signed_in(&parts.headers, state).await? else {
            return Err(Redirect::to("/login").into_response());
        };
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = parse_form(&bytes).map_err(|e| {
            page_with(
                StatusCode::BAD_REQUEST,
                "Bad form",
                html! { p.error { (e) } },
            )
        })?;
        if !session.csrf_ok(fields.get("csrf").map(String::as_str).unwrap_or("")) {
            return Err(page_with(
                StatusCode::FORBIDDEN,
                "Form expired",
                html! { p.error { "This form does not belong to your current session. Go back, reload the page and try again." } },
            ));
        }
        Ok(DeskForm { session, fields })
    }
}
