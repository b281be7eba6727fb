//! Applying at the desk: the form and API, the checks on submission, the status page, cancelling,
//! the team's approval of held applications, and the outcome mail to the contact.

use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::applications::{ApplicationInput, ApplicationStatus, NewApplication, decide};
use super::home::{PageAsker, Scope};
use super::{Desk, DeskForm, DeskHere, page_for};
use crate::api::auth::{Admin, Asker, Session};
use crate::api::{ApiError, AppState, parse_json};
use crate::error::{Error, Result};
use crate::model::{Lang, now_unix};
use crate::notify::mail;
use crate::store::{Application, Store, most_specific};

/// Whether `asker` may apply for `app.address`: the team always; an administrator for their own
/// registration, an address in their blocks, or an unregistered address in nobody else's block.
async fn may_apply(store: &Store, asker: &Asker, app: &NewApplication) -> Result<()> {
    if *asker == Asker::Team {
        return Ok(());
    }
    let scope = Scope::of(store, asker).await?;
    let host = store.get_host(&app.address).await?;
    if scope.sees_address(&app.address, host.as_ref()) {
        return Ok(());
    }
    let nets = store.list_networks().await?;
    let others_block = app
        .address
        .parse::<IpAddr>()
        .ok()
        .and_then(|ip| most_specific(&nets, ip).cloned());
    if host.is_none() && others_block.is_none() {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{} is registered to or in the network block of another administrator; ask them or the security team",
        app.address
    )))
}

/// Whether `asker` may see (and cancel) application `a`.
async fn may_see(store: &Store, asker: &Asker, a: &Application) -> Result<bool> {
    Ok(match asker {
        Asker::Team => true,
        Asker::Admin(s) => {
            a.applicant.eq_ignore_ascii_case(&s.email)
                || a.input.contact_email.eq_ignore_ascii_case(&s.email)
                || {
                    let scope = Scope::of(store, asker).await?;
                    let host = store.get_host(&a.input.address).await?;
                    scope.sees_address(&a.input.address, host.as_ref())
                }
        }
    })
}

/// Validates, checks, decides and records an application, then mails the outcome.
async fn run(
    s: &AppState,
    desk: &std::sync::Arc<Desk>,
    asker: &Asker,
    input: &ApplicationInput,
) -> std::result::Result<Application, ApiError> {
    let Some(checks) = desk.checks.clone() else {
        return Err(Error::Invalid(
            "this registry takes no applications: no DNS resolvers and scanner are configured for the desk".into(),
        )
        .into());
    };
    let app = input.validate()?;
    may_apply(&s.store, asker, &app).await?;
    let outcome = decide(&app, checks.as_ref(), desk.manual_approval).await;
    let recorded = s
        .store
        .submit_application(&app, &asker.actor(), &outcome)
        .await?;
    let desk = desk.clone();
    let mailed = recorded.clone();
    tokio::spawn(async move {
        if let Err(e) = send_outcome(&desk, &mailed).await {
            tracing::error!(id = mailed.id, error = %e, "application outcome not delivered");
        }
    });
    Ok(recorded)
}

fn status_text(status: ApplicationStatus, lang: Lang) -> &'static str {
    match (status, lang) {
        (ApplicationStatus::Approved, Lang::En) => "approved",
        (ApplicationStatus::Held, Lang::En) => "held for the security team's approval",
        (ApplicationStatus::NeedsChanges, Lang::En) => "needs changes",
        (ApplicationStatus::Cancelled, Lang::En) => "cancelled",
        (ApplicationStatus::Approved, Lang::Ja) => "承認されました",
        (ApplicationStatus::Held, Lang::Ja) => "セキュリティチームの承認待ちです",
        (ApplicationStatus::NeedsChanges, Lang::Ja) => "修正が必要です",
        (ApplicationStatus::Cancelled, Lang::Ja) => "取り消されました",
    }
}

/// The outcome mail: subject, text and HTML in the contact's language.
pub fn outcome_mail(a: &Application, base_url: &str) -> (String, String, String) {
    let lang = a.input.lang;
    let status = status_text(a.status, lang);
    let url = format!("{base_url}/desk/applications/{}", a.id);
    let mark = |passed: bool| if passed { "OK" } else { "NG" };
    let (subject, intro, checks_head, findings_head, see) = match lang {
        Lang::En => (
            format!(
                "Application {} for {} ({}): {status}",
                a.id,
                a.input.address,
                a.input.role.as_str()
            ),
            format!(
                "Your application {} for {} ({}) as {} {status}.",
                a.id,
                a.input.address,
                a.input.hostname,
                a.input.role.as_str()
            ),
            "Checks:",
            "Relay audit findings:",
            "Details:",
        ),
        Lang::Ja => (
            format!(
                "申請 {} ({}、{}): {status}",
                a.id,
                a.input.address,
                a.input.role.as_str()
            ),
            format!(
                "{} ({}) の {} としての申請 {} は{status}。",
                a.input.address,
                a.input.hostname,
                a.input.role.as_str(),
                a.id
            ),
            "検査結果:",
            "中継検査で見つかった問題:",
            "詳細:",
        ),
    };
    let mut text = format!("{intro}\n\n{checks_head}\n");
    for c in &a.checks {
        text.push_str(&format!(
            "  [{}] {}: {}\n",
            mark(c.passed),
            c.name,
            c.detail
        ));
    }
    if !a.findings.is_empty() {
        text.push_str(&format!("\n{findings_head}\n"));
        for f in &a.findings {
            text.push_str(&format!("  {} ({}): {}\n", f.kind, f.severity, f.summary));
            if !f.fix.is_empty() {
                text.push_str(&format!("    {}\n", f.fix.replace('\n', "\n    ")));
            }
        }
    }
    text.push_str(&format!("\n{see} {url}\n"));
    let html = html! {
        p { (intro) }
        p { (checks_head) }
        ul { @for c in &a.checks { li { "[" (mark(c.passed)) "] " (c.name) ": " (c.detail) } } }
        @if !a.findings.is_empty() {
            p { (findings_head) }
            ul { @for f in &a.findings { li { (f.kind) " (" (f.severity) "): " (f.summary) @if !f.fix.is_empty() { pre { (f.fix) } } } } }
        }
        p { (see) " " a href=(url) { (url) } }
    }
    .into_string();
    (subject, text, html)
}

async fn send_outcome(desk: &Desk, a: &Application) -> Result<()> {
    let (subject, text, html) = outcome_mail(a, &desk.base_url);
    let to = mail::mailbox(&a.input.contact_name, &a.input.contact_email)?;
    let id = mail::new_message_id(&desk.from, now_unix())?;
    let message = mail::build(&desk.from, &to, &subject, &id, text, html)?;
    mail::send(&desk.transport, message).await?;
    Ok(())
}

fn application_id(id: &str) -> Result<i64> {
    id.parse()
        .map_err(|_| Error::Invalid(format!("invalid application id {id:?}")))
}

async fn visible_application(
    s: &AppState,
    asker: &Asker,
    id: &str,
) -> std::result::Result<Application, ApiError> {
    let id = application_id(id)?;
    let a = s
        .store
        .get_application(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("application {id}")))?;
    if !may_see(&s.store, asker, &a).await? {
        return Err(Error::Forbidden(format!("application {id} is not yours")).into());
    }
    Ok(a)
}

/// `POST /api/v1/applications` with an [`ApplicationInput`]: 201 and the application with its
/// checks' results and status.
pub(crate) async fn api_submit(
    DeskHere(desk): DeskHere,
    asker: Asker,
    State(s): State<AppState>,
    body: Bytes,
) -> std::result::Result<Response, ApiError> {
    let input: ApplicationInput = parse_json(&body)?;
    let a = run(&s, &desk, &asker, &input).await?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

/// `GET /api/v1/applications`: the asker's applications (all of them for the team).
pub(crate) async fn api_list(
    asker: Asker,
    State(s): State<AppState>,
) -> std::result::Result<Response, ApiError> {
    let of = match &asker {
        Asker::Team => None,
        Asker::Admin(session) => Some(session.email.as_str()),
    };
    Ok(Json(s.store.list_applications(of).await?).into_response())
}

/// `GET /api/v1/applications/{id}`.
pub(crate) async fn api_get(
    asker: Asker,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    Ok(Json(visible_application(&s, &asker, &id).await?).into_response())
}

/// `POST /api/v1/applications/{id}/cancel`.
pub(crate) async fn api_cancel(
    asker: Asker,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let a = visible_application(&s, &asker, &id).await?;
    Ok(Json(s.store.cancel_application(a.id, &asker.actor()).await?).into_response())
}

/// `POST /api/v1/applications/{id}/approve`: the security team approves a held application.
pub(crate) async fn api_approve(
    _: Admin,
    DeskHere(desk): DeskHere,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let a = s
        .store
        .approve_application(application_id(&id)?, "security-team")
        .await?;
    let mailed = a.clone();
    tokio::spawn(async move {
        if let Err(e) = send_outcome(&desk, &mailed).await {
            tracing::error!(id = mailed.id, error = %e, "application outcome not delivered");
        }
    });
    Ok(Json(a).into_response())
}

fn apply_form(session: &Session, input: &ApplicationInput, error: Option<&str>) -> Markup {
    let role = input.role.as_str();
    let lang = input.lang.as_deref().unwrap_or("en");
    html! {
        @if let Some(e) = error { p.error { (e) } }
        form method="post" action="/desk/apply" {
            input type="hidden" name="csrf" value=(session.csrf_token());
            table {
                tr { th { label for="address" { "Address" } } td { input id="address" name="address" value=(input.address) required; } }
                tr { th { label for="hostname" { "Host name" } } td { input id="hostname" name="hostname" value=(input.hostname) required; } }
                tr { th { label for="role" { "Role" } } td {
                    select id="role" name="role" {
                        @for (v, label) in [("mail-direct", "mail-direct: receives mail from the Internet (firewall pass)"), ("mail-via-gateway", "mail-via-gateway: receives mail through the campus gateway"), ("internal-only", "internal-only: campus mail only")] {
                            option value=(v) selected[role == v] { (label) }
                        }
                    }
                } }
                tr { th { label for="mail_domain" { "Mail domain" } } td { input id="mail_domain" name="mail_domain" value=(input.mail_domain.as_deref().unwrap_or("")); " (whose MX names the host; default: the host name's domain)" } }
                tr { th { label for="contact_name" { "Contact name" } } td { input id="contact_name" name="contact_name" value=(input.contact_name) required; } }
                tr { th { label for="contact_email" { "Contact e-mail" } } td { input id="contact_email" name="contact_email" type="email" value=(input.contact_email) required; } }
                tr { th { label for="lang" { "Language" } } td {
                    select id="lang" name="lang" {
                        option value="en" selected[lang == "en"] { "English" }
                        option value="ja" selected[lang == "ja"] { "日本語" }
                    }
                } }
                tr { th { label for="note" { "Note" } } td { textarea id="note" name="note" { (input.note.as_deref().unwrap_or("")) } } }
            }
            p { button type="submit" { "Apply" } }
        }
        p { small { "On submission the registry checks DNS (the name resolves to the address, the address's PTR names the host, an MX names the host for mail roles); a mail-direct host also gets a relay audit." } }
    }
}

/// `GET /desk/apply`: the application form.
pub(crate) async fn form(PageAsker(asker): PageAsker) -> std::result::Result<Response, ApiError> {
    let Asker::Admin(session) = &asker else {
        return Ok(Redirect::to("/desk").into_response());
    };
    let input = ApplicationInput {
        contact_email: session.email.clone(),
        role: "mail-direct".into(),
        ..ApplicationInput::default()
    };
    Ok(page_for(
        StatusCode::OK,
        "Apply",
        Some(session),
        apply_form(session, &input, None),
    ))
}

/// `POST /desk/apply`: runs the application and shows its result (the form again, with the
/// message, when a field is invalid).
pub(crate) async fn submit_form(
    DeskHere(desk): DeskHere,
    State(s): State<AppState>,
    form: DeskForm,
) -> std::result::Result<Response, ApiError> {
    let f = |k: &str| form.fields.get(k).cloned().unwrap_or_default();
    let opt = |k: &str| form.fields.get(k).cloned().filter(|v| !v.trim().is_empty());
    let input = ApplicationInput {
        address: f("address"),
        hostname: f("hostname"),
        role: f("role"),
        contact_name: f("contact_name"),
        contact_email: f("contact_email"),
        lang: opt("lang"),
        mail_domain: opt("mail_domain"),
        note: opt("note"),
    };
    let asker = Asker::Admin(form.session.clone());
    match run(&s, &desk, &asker, &input).await {
        Ok(a) => {
            let mut r = Redirect::to(&format!("/desk/applications/{}", a.id)).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            Ok(r)
        }
        Err(ApiError(e @ (Error::Invalid(_) | Error::Forbidden(_)))) => {
            let status = if matches!(e, Error::Forbidden(_)) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            Ok(page_for(
                status,
                "Apply",
                Some(&form.session),
                apply_form(&form.session, &input, Some(&e.to_string())),
            ))
        }
        Err(e) => Err(e),
    }
}

/// `GET /desk/applications/{id}`: the application's status and each check's result.
pub(crate) async fn status_page(
    PageAsker(asker): PageAsker,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let a = visible_application(&s, &asker, &id).await?;
    let session = match &asker {
        Asker::Admin(session) => Some(session),
        Asker::Team => None,
    };
    let title = format!("Application {}", a.id);
    let body = html! {
        p { (a.input.address) " (" (a.input.hostname) ") as " strong { (a.input.role.as_str()) } ": "
            strong class=(a.status.as_str()) { (status_text(a.status, Lang::En)) } }
        h2 { "Checks" }
        table {
            tr { th { "Check" } th { "Result" } th { "Detail" } }
            @for c in &a.checks {
                tr { td { (c.name) } td class=[(!c.passed).then_some("error")] { @if c.passed { "passed" } @else { "failed" } } td { (c.detail) } }
            }
        }
        @if !a.findings.is_empty() {
            h2 { "Relay audit findings" }
            table {
                tr { th { "Kind" } th { "Severity" } th { "Summary" } th { "How to fix" } }
                @for f in &a.findings {
                    tr { td { (f.kind) } td class=(f.severity) { (f.severity) } td { (f.summary) } td { pre { (f.fix) } } }
                }
            }
        }
        @if a.status != ApplicationStatus::Cancelled {
            @if let Some(session) = session {
                form method="post" action={ "/desk/applications/" (a.id) "/cancel" } {
                    input type="hidden" name="csrf" value=(session.csrf_token());
                    button type="submit" { @if a.status == ApplicationStatus::Approved { "Cancel the registration" } @else { "Cancel the application" } }
                }
            }
        }
        p { a href="/desk/apply" { "New application" } " " a href="/desk" { "My hosts" } }
    };
    Ok(page_for(StatusCode::OK, &title, session, body))
}

/// `POST /desk/applications/{id}/cancel`.
pub(crate) async fn cancel_form(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: DeskForm,
) -> std::result::Result<Response, ApiError> {
    let asker = Asker::Admin(form.session.clone());
    let a = visible_application(&s, &asker, &id).await?;
    s.store.cancel_application(a.id, &asker.actor()).await?;
    let mut r = Redirect::to(&format!("/desk/applications/{}", a.id)).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    Ok(r)
}
