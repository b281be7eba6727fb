//! The security team's list of administrators who may sign in without a registration or network
//! block of their own (`/api/v1/desk-admins`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::auth::Admin;
use crate::api::{ApiError, AppState, parse_json};
use crate::error::Error;
use crate::store::DeskAdmin;

/// The body of `POST /api/v1/desk-admins`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAdmin {
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    lang: Option<String>,
    by: String,
}

/// `GET /api/v1/desk-admins`.
pub(crate) async fn list(_: Admin, State(s): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(s.store.list_desk_admins().await?).into_response())
}

/// `POST /api/v1/desk-admins` with `{"email", "name", "lang", "by"}`.
pub(crate) async fn add(
    _: Admin,
    State(s): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let n: NewAdmin = parse_json(&body)?;
    let lang = match n.lang.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(l) => Some(l.parse()?),
    };
    let a = DeskAdmin {
        email: n.email,
        name: n.name,
        lang,
        added_by: String::new(),
        added_at: 0,
    };
    let a = s.store.add_desk_admin(&a, &n.by).await?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

/// `DELETE /api/v1/desk-admins/{email}?by=WHO`.
pub(crate) async fn remove(
    _: Admin,
    State(s): State<AppState>,
    Path(email): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let by = q.get("by").map(String::as_str).unwrap_or("security-team");
    if s.store.remove_desk_admin(&email, by).await? {
        Ok(Json(json!({ "removed": email })).into_response())
    } else {
        Err(Error::NotFound(format!("desk administrator {email}")).into())
    }
}
