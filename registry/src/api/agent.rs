//! Host-agent endpoints: an agent reads its own role and posts its own reports, nothing else.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use relayguard_core::RoleResponse;
use relayguard_core::agent_report::parse_report;
use serde_json::json;

use super::auth::Agent;
use super::{ApiError, AppState};
use crate::error::Error;
use crate::model::parse_address;
use crate::store::ReportOutcome;

/// The agent's token must belong to the host in the path.
fn own(agent: &Agent, address: &str) -> Result<String, ApiError> {
    let address = parse_address(address)?;
    if address == agent.0 {
        Ok(address)
    } else {
        Err(ApiError(Error::Forbidden(
            "an agent token is only valid for its own host".into(),
        )))
    }
}

pub(super) async fn role(
    agent: Agent,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> Response {
    let address = match own(&agent, &address) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    match s.store.get_host(&address).await {
        Ok(Some(h)) => Json(RoleResponse {
            address: h.address,
            hostname: h.hostname,
            role: h.role,
            status: h.status,
        })
        .into_response(),
        Ok(None) => ApiError(Error::NotFound(format!("host {address}"))).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// Report ids: the `Idempotency-Key` header when given (letters, digits, `.-_:`; ≤128), else the
/// SHA-256 of the body, so a plain retry of the same bytes is recognised either way.
fn report_id(headers: &HeaderMap, body: &[u8]) -> Result<String, Error> {
    match headers.get("idempotency-key") {
        None => Ok(crate::token::hash_hex(&String::from_utf8_lossy(body))),
        Some(v) => {
            let s = v.to_str().unwrap_or("").trim();
            let ok = !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
            if ok {
                Ok(s.to_string())
            } else {
                Err(Error::Invalid(
                    "invalid Idempotency-Key (1-128 of letters, digits, . - _ :)".into(),
                ))
            }
        }
    }
}

pub(super) async fn post_report(
    agent: Agent,
    State(s): State<AppState>,
    Path(address): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let address = match own(&agent, &address) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let result = async {
        let text = std::str::from_utf8(&body)
            .map_err(|_| Error::Invalid("report body is not UTF-8".into()))?;
        let report = parse_report(text).map_err(|e| Error::Invalid(e.to_string()))?;
        let id = report_id(&headers, &body)?;
        let outcome = s
            .store
            .add_agent_report(&address, &id, &report, text)
            .await?;
        Ok::<_, Error>((id, outcome))
    }
    .await;
    match result {
        Ok((id, ReportOutcome::Stored)) => (
            StatusCode::CREATED,
            Json(json!({ "report_id": id, "stored": true })),
        )
            .into_response(),
        Ok((id, ReportOutcome::Duplicate)) => (
            StatusCode::OK,
            Json(json!({ "report_id": id, "stored": false, "duplicate": true })),
        )
            .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}
