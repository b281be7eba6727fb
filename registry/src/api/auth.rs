//! Bearer-token authentication: admins (configured tokens, constant-time comparison) and host
//! agents (per-host tokens stored hashed). 401 = who are you?; 403 = known, but not allowed.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, error_response};
use crate::token;

/// Who presented the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An administrator.
    Admin,
    /// The agent of the host with this address.
    Agent(String),
}

/// Extractor: the request carries an admin token.
#[derive(Debug)]
pub struct Admin;

/// Extractor: the request carries an agent token; holds the agent's host address.
#[derive(Debug)]
pub struct Agent(pub String);

/// Extractor for `/metrics`: an admin token or a metrics token.
#[derive(Debug)]
pub struct MetricsReader;

/// Extractor for pages: an admin, by bearer token or by HTTP Basic (password = admin token), so
/// a browser can log in with its own prompt.
#[derive(Debug)]
pub struct PageAdmin;

/// The token of an `Authorization: Bearer` header (or Basic password when `basic` is set).
fn presented(parts: &Parts, basic: bool) -> Option<String> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let t = rest.trim();
        return (!t.is_empty()).then(|| t.to_string());
    }
    if basic && scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest.trim())?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

/// Resolves a token to a principal, or None when nobody holds it.
pub async fn identify(state: &AppState, secret: &str) -> Result<Option<Principal>, ApiError> {
    if token::matches_any(secret, &state.admin_tokens) {
        return Ok(Some(Principal::Admin));
    }
    Ok(state
        .store
        .agent_for_token(secret)
        .await?
        .map(Principal::Agent))
}

fn unauthorized(basic: bool) -> Response {
    let mut r = error_response(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
    let challenge = if basic {
        "Basic realm=\"relayguard registry\""
    } else {
        "Bearer"
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

async fn admin_from(parts: &Parts, state: &AppState, basic: bool) -> Result<(), Response> {
    let Some(secret) = presented(parts, basic) else {
        return Err(unauthorized(basic));
    };
    match identify(state, &secret)
        .await
        .map_err(IntoResponse::into_response)?
    {
        Some(Principal::Admin) => Ok(()),
        Some(Principal::Agent(_)) => Err(error_response(
            StatusCode::FORBIDDEN,
            "agent tokens may not use admin endpoints",
        )),
        None => Err(unauthorized(basic)),
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admin_from(parts, state, false).await.map(|_| Admin)
    }
}

impl FromRequestParts<AppState> for PageAdmin {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admin_from(parts, state, true).await.map(|_| PageAdmin)
    }
}

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match presented(parts, false) {
            Some(secret) if token::matches_any(&secret, &state.metrics_tokens) => Ok(MetricsReader),
            _ => admin_from(parts, state, false)
                .await
                .map(|()| MetricsReader),
        }
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(secret) = presented(parts, false) else {
            return Err(unauthorized(false));
        };
        match identify(state, &secret)
            .await
            .map_err(IntoResponse::into_response)?
        {
            Some(Principal::Agent(address)) => Ok(Agent(address)),
            Some(Principal::Admin) => Err(error_response(
                StatusCode::FORBIDDEN,
                "this endpoint is for host agents; use an agent token",
            )),
            None => Err(unauthorized(false)),
        }
    }
}

/// Standard base64 (with or without padding); None on any invalid character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(
            super::base64_decode("YWRtaW46czNjcmV0").unwrap(),
            b"admin:s3cret"
        );
        assert_eq!(super::base64_decode("YQ==").unwrap(), b"a");
        assert!(super::base64_decode("!!").is_none());
    }
}
