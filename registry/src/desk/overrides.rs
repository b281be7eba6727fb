//! Administrators' overrides of the findings on their own hosts: an accepted risk or a false
//! positive, from the desk page (`POST /desk/findings/{id}/override`) or the API
//! (`POST`/`DELETE /api/v1/desk/findings/{id}/override`).
//!
//! The security team overrides anything through its own API; an administrator only within
//! their scope (their registrations and the addresses of their network blocks), never a
//! critical finding (an open relay seen from outside is the team's call), and an accepted risk
//! for at most [`ADMIN_MAX_DAYS`]. The override is recorded under the administrator's address,
//! in the same audit log as the team's.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use relayguard_core::Severity;
use serde::Deserialize;

use super::DeskForm;
use super::home::Scope;
use crate::api::auth::{Asker, Session};
use crate::api::{ApiError, AppState};
use crate::error::{Error, Result};
use crate::model::{format_date, today};
use crate::store::overrides::OverrideInput;
use crate::store::{FindingRow, FindingStatus, Store};

/// The longest an administrator may accept a risk for: the registration review period, so
/// that every accepted risk comes up again at the next review at the latest.
pub const ADMIN_MAX_DAYS: i64 = 183;

/// An override as an administrator asks for it: who is the session's address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskOverride {
    /// `accepted-risk` or `false-positive`.
    pub kind: String,
    /// Why (required).
    pub reason: String,
    /// The last day it holds (YYYY-MM-DD); required for an accepted risk.
    #[serde(default)]
    pub until: Option<String>,
}

/// The finding `id` if `asker` may override it: 404 when it does not exist, 403 outside the
/// asker's scope or, for an administrator, when it is critical.
async fn overridable(store: &Store, asker: &Asker, id: &str) -> Result<FindingRow> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid finding id {id:?}")))?;
    let finding = store
        .finding(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("finding {id}")))?;
    let scope = Scope::of(store, asker).await?;
    let host = store.get_host(&finding.address).await?;
    if !scope.sees_address(&finding.address, host.as_ref()) {
        return Err(Error::Forbidden(format!(
            "finding {id} is on {}, which is not one of your registrations or in one of your network blocks",
            finding.address
        )));
    }
    if matches!(asker, Asker::Admin(_)) && finding.severity == Severity::Critical {
        return Err(Error::Forbidden(format!(
            "finding {id} is critical: only the security team overrides critical findings"
        )));
    }
    Ok(finding)
}

/// Overrides `finding` as `asker`, within the administrators' limits.
async fn apply(
    store: &Store,
    asker: &Asker,
    finding: &FindingRow,
    o: DeskOverride,
) -> Result<crate::store::overrides::Override> {
    if matches!(asker, Asker::Admin(_))
        && let Some(until) = o.until.as_deref().map(str::trim).filter(|u| !u.is_empty())
    {
        let latest = today() + time::Duration::days(ADMIN_MAX_DAYS);
        let day = crate::model::parse_date(until)?;
        if day > latest {
            return Err(Error::Invalid(format!(
                "an administrator accepts a risk for at most {ADMIN_MAX_DAYS} days (until {} at the latest); ask the security team for longer",
                format_date(latest)
            )));
        }
    }
    store
        .set_override(
            finding.id,
            &OverrideInput {
                kind: o.kind,
                reason: o.reason,
                by: asker.actor(),
                until: o.until,
            },
        )
        .await
}

/// `POST /api/v1/desk/findings/{id}/override` with a [`DeskOverride`].
pub(crate) async fn api_set(
    asker: Asker,
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> std::result::Result<Response, ApiError> {
    let input: DeskOverride = serde_json::from_slice(&body)
        .map_err(|e| Error::Invalid(format!("invalid override: {e}")))?;
    let finding = overridable(&s.store, &asker, &id).await?;
    let o = apply(&s.store, &asker, &finding, input).await?;
    Ok(Json(o).into_response())
}

/// `DELETE /api/v1/desk/findings/{id}/override`: the finding is mailed again.
pub(crate) async fn api_clear(
    asker: Asker,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> std::result::Result<Response, ApiError> {
    let finding = overridable(&s.store, &asker, &id).await?;
    if !s.store.clear_override(finding.id, &asker.actor()).await? {
        return Err(Error::NotFound(format!("override of finding {}", finding.id)).into());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /desk/findings/{id}/override`: the form under a finding on `/desk`.
pub(crate) async fn form_set(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: DeskForm,
) -> std::result::Result<Response, ApiError> {
    let asker = Asker::Admin(form.session.clone());
    let finding = overridable(&s.store, &asker, &id).await?;
    let field = |k: &str| form.fields.get(k).cloned().unwrap_or_default();
    let input = DeskOverride {
        kind: field("kind"),
        reason: field("reason"),
        until: Some(field("until")).filter(|u| !u.trim().is_empty()),
    };
    apply(&s.store, &asker, &finding, input).await?;
    Ok(back_to_desk())
}

/// `POST /desk/findings/{id}/override/clear`.
pub(crate) async fn form_clear(
    State(s): State<AppState>,
    Path(id): Path<String>,
    form: DeskForm,
) -> std::result::Result<Response, ApiError> {
    let asker = Asker::Admin(form.session.clone());
    let finding = overridable(&s.store, &asker, &id).await?;
    s.store.clear_override(finding.id, &asker.actor()).await?;
    Ok(back_to_desk())
}

fn back_to_desk() -> Response {
    let mut r = Redirect::to("/desk").into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// Under an open finding on `/desk`: its override (if any) and, for a signed-in
/// administrator, the form to make or remove one. Critical findings get no form.
pub(crate) fn controls(f: &FindingRow, session: Option<&Session>) -> Markup {
    let day = today();
    let held = f
        .overridden
        .as_ref()
        .zip(f.override_state(day))
        .map(|(o, state)| (o, state == crate::store::overrides::OverrideState::InForce));
    html! {
        @if let Some((o, in_force)) = held {
            small {
                @if in_force {
                    em { (o.kind.as_str()) @if let Some(u) = &o.until { " until " (u) } } " by " (o.made_by) ": " (o.reason)
                } @else {
                    "override by " (o.made_by) " lapsed: open again"
                }
            }
            @if let Some(session) = session {
                form method="post" action={ "/desk/findings/" (f.id) "/override/clear" } class="inline" {
                    input type="hidden" name="csrf" value=(session.csrf_token());
                    button type="submit" { "Remove the override" }
                }
            }
            br;
        }
        @if let (Some(session), true) = (session, f.status == FindingStatus::Open && f.severity != Severity::Critical) {
            details {
                summary { "Accept the risk or mark as a false positive" }
                form method="post" action={ "/desk/findings/" (f.id) "/override" } {
                    input type="hidden" name="csrf" value=(session.csrf_token());
                    label { "Override " select name="kind" {
                        option value="accepted-risk" { "accepted risk" }
                        option value="false-positive" { "false positive" }
                    } }
                    " "
                    label { "until " input type="date" name="until"
                        max=(format_date(day + time::Duration::days(ADMIN_MAX_DAYS))); }
                    " "
                    label { "because " input type="text" name="reason" required size="40"; }
                    " "
                    button type="submit" { "Save" }
                }
            }
        }
    }
}
