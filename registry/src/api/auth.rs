//! Bearer-token authentication: admins (configured tokens, constant-time comparison) and host
//! agents (per-host tokens stored hashed). 401 = who are you?; 403 = known, but not allowed.
//!
//! The registration desk adds a third kind of caller: a host administrator signed in with a
//! session cookie ([`Asker`]). Such a session is never enough for the security team's endpoints
//! and pages ([`Admin`], [`PageAdmin`] answer 403).

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
        if signed_in(&parts.headers, state).await?.is_some() {
            return Err(error_response(
                StatusCode::FORBIDDEN,
                "this is for the security team; administrators use the desk (/desk)",
            ));
        }
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

/// The name of the desk's session cookie.
pub const SESSION_COOKIE: &str = "rg_session";

/// The value of cookie `name` in the request's headers, if any.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A signed-in host administrator: their address and the session that proves it.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The administrator's address, lower-cased.
    pub email: String,
    secret: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("Session")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session's CSRF token: derived from the session secret, so it is tied to this session,
    /// needs no storage, and cannot be guessed without the cookie.
    pub fn csrf_token(&self) -> String {
        token::hash_hex(&format!("csrf|{}", self.secret))
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        token::ct_eq(presented.as_bytes(), self.csrf_token().as_bytes())
    }

    /// The session secret (the cookie's value), for signing out.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// The session of the request's cookie, when it names an unexpired session.
pub async fn signed_in(
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Result<Option<Session>, Response> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let email = state
        .store
        .session_email(&secret, crate::model::now_unix())
        .await
        .map_err(|e| ApiError(e).into_response())?;
    Ok(email.map(|email| Session { email, secret }))
}

/// Extractor: who is asking — the security team (admin token, bearer or Basic) or a signed-in
/// host administrator (session cookie). A session on anything but GET/HEAD must carry the
/// session's CSRF token in `X-CSRF-Token` (forms post theirs in a field, checked by the desk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asker {
    /// The security team: sees and changes everything.
    Team,
    /// A host administrator: sees and changes only their own.
    Admin(Session),
}

impl Asker {
    /// Who, as written to the audit log: `security-team` or the administrator's address.
    pub fn actor(&self) -> String {
        match self {
            Asker::Team => "security-team".into(),
            Asker::Admin(s) => s.email.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Asker {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if presented(parts, true).is_some() {
            return admin_from(parts, state, true).await.map(|()| Asker::Team);
        }
        let Some(session) = signed_in(&parts.headers, state).await? else {
            return Err(unauthorized(false));
        };
        if !matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        ) {
            let presented = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session.csrf_ok(presented) {
                return Err(error_response(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token for this session",
                ));
            }
        }
        Ok(Asker::Admin(session))
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
