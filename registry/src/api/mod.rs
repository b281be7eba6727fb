//! The HTTP API (axum): JSON endpoints for admins, two endpoints for host agents, exports and the
//! server-rendered pages.
//!
//! Every body is read as bytes and parsed here, so a malformed body gets a JSON error naming the
//! problem (400/413/415 never come back as axum's plain-text rejections), and no input can make a
//! handler answer 500: only a failing database does.

mod admin;
mod agent;
pub mod auth;
mod health;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::error::Error;
use crate::store::Store;

/// Largest sweep upload (a /16 with transcripts is tens of MB).
pub const SWEEP_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Largest agent report.
pub const REPORT_BODY_LIMIT: usize = 1024 * 1024;
/// Largest other body (CSV imports, JSON objects).
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The registry database.
    pub store: Store,
    /// Admin bearer tokens (compared in constant time, see [`crate::token::matches_any`]).
    pub admin_tokens: Arc<Vec<String>>,
    /// Tokens that may read `/metrics` and nothing else.
    pub metrics_tokens: Arc<Vec<String>>,
}

/// The whole application: `/api/v1/…` JSON, `/` pages.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route("/hosts", get(admin::list_hosts).post(admin::add_host))
        .route("/hosts/import", post(admin::import_hosts))
        .route(
            "/hosts/{address}",
            get(admin::get_host)
                .patch(admin::update_host)
                .delete(admin::remove_host),
        )
        .route(
            "/hosts/{address}/agent-token",
            post(admin::create_agent_token),
        )
        .route("/hosts/{address}/reports", get(admin::host_reports))
        .route(
            "/hosts/{address}/health-thresholds",
            get(health::get_thresholds).put(health::put_thresholds),
        )
        .route(
            "/networks",
            get(admin::list_networks).post(admin::add_network),
        )
        .route(
            "/networks/{*cidr}",
            axum::routing::delete(admin::remove_network),
        )
        .route(
            "/sweeps",
            get(admin::list_sweeps)
                .post(admin::post_sweep)
                .layer(DefaultBodyLimit::max(SWEEP_BODY_LIMIT)),
        )
        .route("/sweeps/{id}", get(admin::get_sweep))
        .route("/findings", get(admin::list_findings))
        .route(
            "/findings/{id}/override",
            post(admin::set_override).delete(admin::clear_override),
        )
        .merge(admin::list_routes())
        .route("/audit-log", get(admin::audit_log))
        .merge(crate::desk::api_routes())
        .route("/export/{name}", get(admin::export))
        .route("/agent/{address}/role", get(agent::role))
        .route(
            "/agent/{address}/reports",
            post(agent::post_report).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .fallback(|| async { ApiError(Error::NotFound("endpoint".into())) });
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics::metrics))
        .merge(crate::pages::routes())
        .merge(crate::review::pages::routes())
        .merge(crate::sweep_page::routes())
        .merge(crate::desk::page_routes())
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        .with_state(state)
}

/// An [`Error`] as an HTTP response: `{"error": "..."}` with the matching status.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Database(_) | Error::Io { .. } | Error::Delivery(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Details go to the log, not to the client.
            tracing::error!(error = %self.0, "request failed");
            "internal error".to_string()
        } else {
            self.0.to_string()
        };
        (status, axum::Json(json!({ "error": message }))).into_response()
    }
}

/// A plain error response with a status and a message.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Parses a JSON body with a clear message on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(Error::Invalid(format!("invalid JSON body: {e}"))))
}

/// A response with a body and an explicit content type.
pub(crate) fn typed(content_type: &'static str, body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
