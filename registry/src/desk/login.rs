//! Signing in by mailed link, and signing out.
//!
//! `GET /login` asks for an address; `POST /login` mails a one-time link to it when the registry
//! knows it as an administrator, and answers the same either way (no way to learn who is
//! known). `GET /login/{token}` only shows a button, because mail scanners fetch links before
//! people do; `POST /login/{token}` spends the link and opens the session.
//!
//! The forms of someone not signed in yet carry a random value that must match a `SameSite=Strict`
//! cookie set with the form (a double-submitted token): another site can neither read it nor
//! make the browser send the cookie, so it cannot sign a victim in to the attacker's session.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{
    DeskForm, DeskHere, LINK_TTL, REQUESTS_PER_ADDRESS, REQUESTS_PER_CLIENT, SESSION_TTL, page_for,
    page_with, parse_form,
};
use crate::api::auth::{SESSION_COOKIE, cookie, signed_in};
use crate::api::{ApiError, AppState};
use crate::model::{Lang, now_unix};
use crate::notify::mail;
use crate::server::Peer;
use crate::store::{KnownAdmin, LinkState, normalize_email};
use crate::token;

/// The cookie holding the anonymous forms' double-submitted token.
const PRE_COOKIE: &str = "rg_pre";

/// Extractor: the client's address, as the per-client rate limit counts it (`unknown` when the
/// server was not started with connection info).
pub struct Client(pub String);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Client(
            parts
                .extensions
                .get::<ConnectInfo<Peer>>()
                .map(|c| crate::model::canonical_ip(c.0.0.ip()).to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// A fresh double-submit value, and the response header that sets its cookie.
fn pre_token(desk: &super::Desk) -> Result<(String, HeaderValue), ApiError> {
    let t = token::generate("rgp")?;
    let c = desk.cookie(PRE_COOKIE, &t, "/login", LINK_TTL);
    Ok((t, c))
}

/// Whether the form's `csrf` field matches the double-submit cookie.
fn pre_ok(headers: &HeaderMap, field: Option<&String>) -> bool {
    match (cookie(headers, PRE_COOKIE), field) {
        (Some(c), Some(f)) => token::ct_eq(c.as_bytes(), f.as_bytes()),
        _ => false,
    }
}

fn with_cookie(mut r: Response, c: HeaderValue) -> Response {
    r.headers_mut().append(header::SET_COOKIE, c);
    r
}

fn stale_form() -> Response {
    page_with(
        StatusCode::FORBIDDEN,
        "Form expired",
        html! {
            p.error { "This form has expired or was not sent from this site." }
            p { a href="/login" { "Start again" } }
        },
    )
}

fn login_form(csrf: &str, email: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error { (e) } }
        p { "Administrators of registered mail servers and network blocks sign in with a link sent by mail." }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            label { "E-mail address " input type="email" name="email" value=(email) required autocomplete="email"; }
            " "
            button type="submit" { "Send me a sign-in link" }
        }
    }
}

/// `GET /login`: the form asking for an address.
pub(crate) async fn form(
    DeskHere(desk): DeskHere,
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if signed_in(&headers, &s).await.ok().flatten().is_some() {
        return Ok(Redirect::to("/desk").into_response());
    }
    let (t, c) = pre_token(&desk)?;
    Ok(with_cookie(
        page_with(StatusCode::OK, "Sign in", login_form(&t, "", None)),
        c,
    ))
}

/// `POST /login`: records the request, mails a link to a known administrator, and answers the
/// same whether or not the address is known.
pub(crate) async fn request(
    DeskHere(desk): DeskHere,
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields = parse_form(&body)?;
    if !pre_ok(&headers, fields.get("csrf")) {
        return Ok(stale_form());
    }
    let given = fields.get("email").map(|e| e.trim()).unwrap_or("");
    let email = match normalize_email(given) {
        Ok(e) => e,
        Err(_) => {
            let (t, c) = pre_token(&desk)?;
            let msg = if given.is_empty() {
                "Please enter your e-mail address.".to_string()
            } else {
                format!(
                    "{given:?} is not a valid e-mail address (expected e.g. name@example.ac.jp)."
                )
            };
            return Ok(with_cookie(
                page_with(
                    StatusCode::BAD_REQUEST,
                    "Sign in",
                    login_form(&t, given, Some(&msg)),
                ),
                c,
            ));
        }
    };
    let now = now_unix();
    let counts = s.store.record_login_request(&email, &client, now).await?;
    if counts.for_email > REQUESTS_PER_ADDRESS || counts.from_client > REQUESTS_PER_CLIENT {
        tracing::warn!(%email, %client, ?counts, "sign-in requests rate-limited");
        let mut r = page_with(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in requests",
            html! {
                p { "Too many sign-in links were asked for this address or from your network in the last hour. Use the newest link you received, or try again in an hour." }
            },
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
        return Ok(r);
    }
    if let Some(admin) = s.store.known_admin(&email).await? {
        let secret = s.store.create_login_token(&email, now, LINK_TTL).await?;
        // Sent in the background: the answer must not take longer for a known address.
        tokio::spawn(async move {
            if let Err(e) = send_link(&desk, &admin, &secret).await {
                tracing::error!(email = %admin.email, error = %e, "sign-in link not delivered");
            }
        });
    } else {
        tracing::info!(%email, "sign-in asked for an address the registry does not know");
    }
    Ok(page_with(
        StatusCode::OK,
        "Check your mail",
        html! {
            p { "If " strong { (email) } " belongs to an administrator known to the registry, a sign-in link is on its way to it." }
            p { "The link works once, for " (LINK_TTL / 60) " minutes. Nothing arrived? Ask the security team to add your address." }
        },
    ))
}

/// The sign-in mail: subject, text and HTML in the administrator's language.
pub fn link_mail(lang: Lang, email: &str, url: &str) -> (String, String, String) {
    let minutes = LINK_TTL / 60;
    match lang {
        Lang::En => (
            "Your sign-in link to the mail-server registration desk".into(),
            format!(
                "Someone (hopefully you) asked to sign in to the relayguard registration desk as {email}.\n\n\
                 Open this link within {minutes} minutes and press \"Sign in\":\n\n{url}\n\n\
                 The link works once. If you did not ask for it, ignore this mail: nobody can sign in without it.\n"
            ),
            html! {
                p { "Someone (hopefully you) asked to sign in to the relayguard registration desk as " (email) "." }
                p { "Open this link within " (minutes) " minutes and press \u{201c}Sign in\u{201d}:" }
                p { a href=(url) { (url) } }
                p { "The link works once. If you did not ask for it, ignore this mail: nobody can sign in without it." }
            }
            .into_string(),
        ),
        Lang::Ja => (
            "メールサーバ登録窓口へのサインインリンク".into(),
            format!(
                "{email} として relayguard 登録窓口へのサインインが要求されました。\n\n\
                 {minutes} 分以内に次のリンクを開き、「サインイン」を押してください。\n\n{url}\n\n\
                 このリンクは一度だけ使えます。心当たりがない場合はこのメールを無視してください。\n"
            ),
            html! {
                p { (email) " として relayguard 登録窓口へのサインインが要求されました。" }
                p { (minutes) " 分以内に次のリンクを開き、「サインイン」を押してください。" }
                p { a href=(url) { (url) } }
                p { "このリンクは一度だけ使えます。心当たりがない場合はこのメールを無視してください。" }
            }
            .into_string(),
        ),
    }
}

async fn send_link(desk: &super::Desk, admin: &KnownAdmin, secret: &str) -> crate::Result<()> {
    let url = format!("{}/login/{secret}", desk.base_url);
    let (subject, text, html) = link_mail(admin.lang, &admin.email, &url);
    let to = mail::mailbox(&admin.name, &admin.email)?;
    let id = mail::new_message_id(&desk.from, now_unix())?;
    let message = mail::build(&desk.from, &to, &subject, &id, text, html)?;
    mail::send(&desk.transport, message).await?;
    Ok(())
}

/// Why a link cannot sign anyone in, as a page.
fn link_refused(state: &LinkState) -> Response {
    let (status, title, text) = match state {
        LinkState::Used => (
            StatusCode::GONE,
            "Link already used",
            "This sign-in link has already been used. Each link works once; ask for a new one.",
        ),
        LinkState::Expired => (
            StatusCode::GONE,
            "Link expired",
            "This sign-in link has expired (links work for 15 minutes). Ask for a new one.",
        ),
        LinkState::Unknown | LinkState::Valid(_) => (
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This sign-in link is not valid. Check that the whole link was copied, or ask for a new one.",
        ),
    };
    page_with(
        status,
        title,
        html! { p.error { (text) } p { a href="/login" { "Ask for a new sign-in link" } } },
    )
}

/// `GET /login/{token}`: a button that signs in; fetching the link changes nothing.
pub(crate) async fn confirm(
    DeskHere(desk): DeskHere,
    State(s): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Response, ApiError> {
    match s.store.login_link_state(&secret, now_unix()).await? {
        LinkState::Valid(email) => {
            let (t, c) = pre_token(&desk)?;
            let action = format!("/login/{secret}");
            Ok(with_cookie(
                page_with(
                    StatusCode::OK,
                    "Sign in",
                    html! {
                        p { "Sign in to the registration desk as " strong { (email) } "?" }
                        form method="post" action=(action) {
                            input type="hidden" name="csrf" value=(t);
                            button type="submit" { "Sign in" }
                        }
                    },
                ),
                c,
            ))
        }
        other => Ok(link_refused(&other)),
    }
}

/// `POST /login/{token}`: spends the link, sets the session cookie, goes to the desk.
pub(crate) async fn redeem(
    DeskHere(desk): DeskHere,
    State(s): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields = parse_form(&body)?;
    if !pre_ok(&headers, fields.get("csrf")) {
        return Ok(stale_form());
    }
    match s
        .store
        .redeem_login_link(&secret, now_unix(), SESSION_TTL)
        .await?
    {
        Ok((session, email)) => {
            tracing::info!(%email, "administrator signed in");
            let mut r = Redirect::to("/desk").into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                desk.cookie(SESSION_COOKIE, &session, "/", SESSION_TTL),
            );
            h.append(header::SET_COOKIE, desk.cookie(PRE_COOKIE, "", "/login", 0));
            Ok(r)
        }
        Err(state) => Ok(link_refused(&state)),
    }
}

/// `POST /logout`: ends the session and removes the cookie.
pub(crate) async fn logout(
    DeskHere(desk): DeskHere,
    State(s): State<AppState>,
    form: DeskForm,
) -> Result<Response, ApiError> {
    s.store.end_session(form.session.secret()).await?;
    Ok(with_cookie(
        page_for(
            StatusCode::OK,
            "Signed out",
            None,
            html! { p { "You are signed out. " a href="/login" { "Sign in again" } } },
        ),
        desk.cookie(SESSION_COOKIE, "", "/", 0),
    ))
}
