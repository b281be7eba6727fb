//! The reminder mail and the renewal pages: `GET /review/{token}` shows what the link renews
//! and asks for confirmation (a link scanner fetching it changes nothing); `POST` renews.
//!
//! Where the server runs the registration desk with its checks, a renewal is checked as an
//! application for the same role is: the DNS consistency checks, and for `mail-direct` a relay
//! audit. A registration that fails them is not renewed (the link stays usable) and the page
//! says which check failed and why.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use maud::{DOCTYPE, Markup, html};

use super::store::LinkState;
use crate::api::{ApiError, AppState};
use crate::desk::Desk;
use crate::desk::applications::{ApplicationChecks, CheckResult, NewApplication, decide};
use crate::model::{Host, Lang, Role, format_date, now_unix};

/// The renewal routes, merged into the application router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/review/{token}", get(confirm).post(renew))
}

fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="referrer" content="no-referrer";
                title { (title) " — relayguard registry" }
            }
            body { h1 { (title) } (body) }
        }
    };
    (status, axum::response::Html(page.into_string())).into_response()
}

/// The page for a link that cannot renew anything.
fn refused(state: &LinkState) -> Response {
    match state {
        LinkState::Used(_) => page(
            StatusCode::GONE,
            "This link has already been used",
            html! { p { "Each renewal link works once. The registration was renewed when it was first used; a new reminder comes before the next review." } },
        ),
        LinkState::Expired => page(
            StatusCode::GONE,
            "This link has expired",
            html! { p { "Ask the security team to renew the registration, or wait for the next reminder." } },
        ),
        _ => page(
            StatusCode::NOT_FOUND,
            "Unknown renewal link",
            html! { p { "This is not a renewal link of this registry (check that it was copied whole)." } },
        ),
    }
}

fn summary(h: &Host) -> Markup {
    html! {
        table {
            tr { th { "Host" } td { (h.hostname) " (" (h.address) ")" } }
            tr { th { "Role" } td { (h.role.as_str()) } }
            tr { th { "Administrator" } td { (h.admin_name) " <" (h.admin_email) ">" } }
            tr { th { "Last reviewed" } td { (h.reviewed_on) } }
            tr { th { "Review due" } td { (h.review_due().map(format_date).unwrap_or_default()) } }
        }
    }
}

async fn confirm(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let state = s.store.review_link(&token, now_unix()).await?;
    let LinkState::Valid(h, _) = &state else {
        return Ok(refused(&state));
    };
    Ok(page(
        StatusCode::OK,
        "Is this registration still needed?",
        html! {
            (summary(h))
            p { "Renewing keeps the registration in force for another " (h.review_months) " months. If the host no longer needs this role, do not renew: ask the security team to change or retire it." }
            form method="post" {
                button type="submit" { "Yes, still needed: renew" }
            }
        },
    ))
}

async fn renew(
    State(s): State<AppState>,
    desk: Option<Extension<Arc<Desk>>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(checks) = desk.as_ref().and_then(|Extension(d)| d.checks()) {
        let state = s.store.review_link(&token, now_unix()).await?;
        let LinkState::Valid(h, _) = &state else {
            return Ok(refused(&state));
        };
        let failed: Vec<CheckResult> = recheck(h, checks.as_ref())
            .await
            .into_iter()
            .filter(|c| !c.passed)
            .collect();
        if !failed.is_empty() {
            return Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not renewed: a check failed",
                html! {
                    (summary(h))
                    p { "A renewal is checked as an application for the same role is. These checks failed, so the registration was not renewed:" }
                    table {
                        tr { th { "Check" } th { "Result" } }
                        @for c in &failed {
                            tr { td { (c.name) } td { (c.detail) } }
                        }
                    }
                    p { "Fix what they show and follow the link in the reminder again: it stays valid until it expires." }
                },
            ));
        }
    }
    let state = s.store.renew_by_link(&token).await?;
    let LinkState::Valid(h, _) = &state else {
        return Ok(refused(&state));
    };
    Ok(page(
        StatusCode::OK,
        "Registration renewed",
        html! {
            (summary(h))
            p { "Thank you. The next review is due on " (h.review_due().map(format_date).unwrap_or_default()) "." }
        },
    ))
}

/// The checks an application for `h`'s role would get, run again: none for roles the desk
/// does not take (`non-mail`) or a registration without a host name.
async fn recheck(h: &Host, checks: &dyn ApplicationChecks) -> Vec<CheckResult> {
    let needs_mx = matches!(h.role, Role::MailDirect | Role::MailViaGateway);
    if h.hostname.is_empty()
        || !matches!(
            h.role,
            Role::MailDirect | Role::MailViaGateway | Role::InternalOnly
        )
    {
        return Vec::new();
    }
    let app = NewApplication {
        address: h.address.clone(),
        hostname: h.hostname.clone(),
        role: h.role,
        contact_name: h.admin_name.clone(),
        contact_email: h.admin_email.clone(),
        lang: h.admin_lang.unwrap_or(Lang::En),
        mail_domain: needs_mx
            .then(|| h.hostname.split_once('.').map(|(_, d)| d.to_string()))
            .flatten(),
        note: String::new(),
    };
    decide(&app, checks, false).await.checks
}

/// The reminder: (subject, text, HTML) in `lang`.
pub fn reminder(
    h: &Host,
    due_on: &str,
    expired: bool,
    link: &str,
    lang: Lang,
) -> (String, String, String) {
    let (subject, lead, action) = match (lang, expired) {
        (Lang::Ja, false) => (
            format!("[relayguard] 登録の見直し期限 {due_on}: {}", h.hostname),
            format!(
                "{} ({}) の「{}」としての登録は {due_on} に見直し期限を迎えます。",
                h.hostname, h.address, h.role
            ),
            "引き続き必要であれば、次のリンクを開いて更新してください（一度だけ有効）:",
        ),
        (Lang::Ja, true) => (
            format!(
                "[relayguard] 登録の見直し期限切れ ({due_on}): {}",
                h.hostname
            ),
            format!(
                "{} ({}) の「{}」としての登録は {due_on} に見直し期限を過ぎ、ファイアウォールと外部DNSの出力から外れました。",
                h.hostname, h.address, h.role
            ),
            "引き続き必要であれば、次のリンクを開いて更新してください（一度だけ有効）:",
        ),
        (Lang::En, false) => (
            format!(
                "[relayguard] Registration review due {due_on}: {}",
                h.hostname
            ),
            format!(
                "The registration of {} ({}) as {} is due for review on {due_on}. After that day it \
                 drops out of the firewall pass-list and the external DNS.",
                h.hostname, h.address, h.role
            ),
            "If it is still needed, open this link to renew it (it works once):",
        ),
        (Lang::En, true) => (
            format!(
                "[relayguard] Registration review overdue since {due_on}: {}",
                h.hostname
            ),
            format!(
                "The registration of {} ({}) as {} was due for review on {due_on} and has dropped \
                 out of the firewall pass-list and the external DNS.",
                h.hostname, h.address, h.role
            ),
            "If it is still needed, open this link to renew it (it works once):",
        ),
    };
    let text = format!("{lead}\n\n{action}\n{link}\n");
    let html = html! {
        p { (lead) }
        p { (action) br; a href=(link) { (link) } }
    }
    .into_string();
    (subject, text, html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostStatus, Role};

    #[test]
    fn reminders_speak_the_administrators_language_and_carry_the_link() {
        let h = Host {
            address: "192.0.2.25".into(),
            hostname: "mx.example.ac.jp".into(),
            role: Role::MailDirect,
            admin_name: "Sato".into(),
            admin_email: "sato@example.ac.jp".into(),
            note: String::new(),
            registered_on: "2026-01-01".into(),
            reviewed_on: "2026-01-01".into(),
            review_months: 6,
            status: HostStatus::Active,
            admin_lang: Some(Lang::Ja),
        };
        let link = "https://reg.example/review/rv_x";
        let (subject, text, html) = reminder(&h, "2026-07-01", false, link, Lang::Ja);
        assert!(subject.contains("見直し期限 2026-07-01"), "{subject}");
        assert!(text.contains(link) && html.contains(link), "{text}\n{html}");
        let (subject, text, _) = reminder(&h, "2026-07-01", true, link, Lang::En);
        assert!(subject.contains("overdue since 2026-07-01"), "{subject}");
        assert!(text.contains("dropped out"), "{text}");
        // Names are escaped in the HTML part.
        let mut odd = h.clone();
        odd.hostname = "<b>x</b>".into();
        let (_, _, html) = reminder(&odd, "2026-07-01", false, link, Lang::En);
        assert!(
            !html.contains("<b>x") && html.contains("&lt;b&gt;x"),
            "{html}"
        );
    }
}
