//! Admin endpoints for a host's queue health thresholds (see [`crate::store::ThresholdSettings`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Admin;
use super::{ApiError, AppState, parse_json};
use crate::store::ThresholdSettings;

/// What both endpoints answer: what is set (`null`: default) and what is in effect.
fn answer(address: &str, set: ThresholdSettings) -> Response {
    Json(json!({ "address": address, "set": set, "effective": set.effective() })).into_response()
}

/// `GET /api/v1/hosts/{address}/health-thresholds`
pub(super) async fn get_thresholds(
    _: Admin,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    let set = s.store.health_thresholds(&address).await?;
    Ok(answer(address.trim(), set))
}

/// `PUT /api/v1/hosts/{address}/health-thresholds` with
/// `{"queue_backlog_threshold": 2000, "bounce_burst_threshold": null, "by": "…"}`
/// (a missing or `null` threshold is the registry's default).
pub(super) async fn put_thresholds(
    _: Admin,
    State(s): State<AppState>,
    Path(address): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Put {
        #[serde(default)]
        queue_backlog_threshold: Option<u64>,
        #[serde(default)]
        bounce_burst_threshold: Option<u64>,
        by: String,
    }
    let p: Put = parse_json(&body)?;
    let set = ThresholdSettings {
        queue_backlog_threshold: p.queue_backlog_threshold,
        bounce_burst_threshold: p.bounce_burst_threshold,
    };
    let set = s.store.set_health_thresholds(&address, &set, &p.by).await?;
    Ok(answer(address.trim(), set))
}
