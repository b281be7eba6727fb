//! The desk's sign-in in the store: administrators added by the security team, one-time sign-in
//! links, sessions, and the request counts the sign-in rate limits read.
//!
//! Link tokens and session ids are random 256-bit secrets ([`crate::token::generate`]); only
//! their SHA-256 is stored, so a copy of the database signs nobody in. E-mail addresses are
//! compared lower-cased.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, get_i64, get_opt_i64, get_str};
use crate::error::Result;
use crate::model::{Lang, now_unix, parse_email, parse_text};
use crate::token;

/// An administrator the security team added to the desk by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskAdmin {
    /// The address sign-in links go to (lower-cased).
    pub email: String,
    /// The administrator's name (may be empty).
    #[serde(default)]
    pub name: String,
    /// The language mails are written in (English when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<Lang>,
    /// Who added them.
    #[serde(default)]
    pub added_by: String,
    /// When (Unix seconds).
    #[serde(default)]
    pub added_at: i64,
}

/// Someone the registry knows as an administrator, and how to write to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAdmin {
    /// Their address, lower-cased.
    pub email: String,
    /// Their name as the registry has it (may be empty).
    pub name: String,
    /// The language to write to them in.
    pub lang: Lang,
}

/// What a sign-in link is worth now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Unused and unexpired: it signs in this address.
    Valid(String),
    /// Already used once.
    Used,
    /// Its time ran out.
    Expired,
    /// No such link (mistyped, or never issued).
    Unknown,
}

/// How many sign-in requests were made in the last hour, counted after recording one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    /// For the address asked for.
    pub for_email: i64,
    /// From the client that asked.
    pub from_client: i64,
}

/// Lower-cases and validates an address for the desk's comparisons.
pub fn normalize_email(email: &str) -> Result<String> {
    Ok(parse_email(email)?.to_ascii_lowercase())
}

impl Store {
    /// Adds (or updates) an administrator the security team allows to sign in; `by` is who.
    pub async fn add_desk_admin(&self, admin: &DeskAdmin, by: &str) -> Result<DeskAdmin> {
        let a = DeskAdmin {
            email: normalize_email(&admin.email)?,
            name: parse_text("name", &admin.name, false)?,
            lang: admin.lang,
            added_by: parse_text("by", by, true)?,
            added_at: now_unix(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM desk_admins WHERE email = $1")
            .bind(a.email.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO desk_admins (email, name, lang, added_by, added_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(a.email.clone())
        .bind(a.name.clone())
        .bind(a.lang.map(Lang::as_str))
        .bind(a.added_by.clone())
        .bind(a.added_at)
        .execute(&mut *tx)
        .await?;
        super::overrides::audit(
            &mut tx,
            &a.added_by,
            "desk-admin-added",
            &a.email,
            &serde_json::json!({ "name": a.name, "lang": a.lang }),
        )
        .await?;
        tx.commit().await?;
        Ok(a)
    }

    /// The administrators added by hand, by address.
    pub async fn list_desk_admins(&self) -> Result<Vec<DeskAdmin>> {
        let rows = sqlx::query(
            "SELECT email, name, lang, added_by, added_at FROM desk_admins ORDER BY email",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeskAdmin {
                    email: get_str(r, "email")?,
                    name: get_str(r, "name")?,
                    lang: r
                        .try_get::<Option<String>, _>("lang")?
                        .map(|l| l.parse())
                        .transpose()?,
                    added_by: get_str(r, "added_by")?,
                    added_at: get_i64(r, "added_at")?,
                })
            })
            .collect()
    }

    /// Removes a hand-added administrator and ends their sessions; returns whether they existed.
    pub async fn remove_desk_admin(&self, email: &str, by: &str) -> Result<bool> {
        let email = normalize_email(email)?;
        let by = parse_text("by", by, true)?;
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM desk_admins WHERE email = $1")
            .bind(email.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            super::overrides::audit(
                &mut tx,
                &by,
                "desk-admin-removed",
                &email,
                &serde_json::json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// The administrator with this address, if the registry knows one: the administrator of a
    /// registration, the owner of a network block, or one added by hand (in that order for the
    /// name and language).
    pub async fn known_admin(&self, email: &str) -> Result<Option<KnownAdmin>> {
        let email = normalize_email(email)?;
        let sources = [
            "SELECT admin_name AS name, admin_lang AS lang FROM hosts WHERE lower(admin_email) = $1",
            "SELECT owner_name AS name, owner_lang AS lang FROM networks WHERE lower(owner_email) = $1",
            "SELECT name, lang FROM desk_admins WHERE email = $1",
        ];
        for sql in sources {
            let row = sqlx::query(sql)
                .bind(email.clone())
                .fetch_optional(self.pool())
                .await?;
            if let Some(r) = row {
                let lang = r
                    .try_get::<Option<String>, _>("lang")?
                    .map(|l| l.parse::<Lang>())
                    .transpose()?
                    .unwrap_or_default();
                return Ok(Some(KnownAdmin {
                    email,
                    name: get_str(&r, "name")?,
                    lang,
                }));
            }
        }
        Ok(None)
    }

    /// Records a sign-in request for `email` from `client` at `now` and returns the requests
    /// of the last hour (this one included). Rows older than a day are dropped on the way.
    pub async fn record_login_request(
        &self,
        email: &str,
        client: &str,
        now: i64,
    ) -> Result<RequestCounts> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM desk_login_requests WHERE at < $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO desk_login_requests (at, email, client) VALUES ($1, $2, $3)")
            .bind(now)
            .bind(email.to_string())
            .bind(client.to_string())
            .execute(&mut *tx)
            .await?;
        let count = |col: &'static str, value: &str| {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM desk_login_requests WHERE {col} = $1 AND at > $2"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(value.to_string())
                .bind(now - 3600)
        };
        let for_email = get_i64(&count("email", email).fetch_one(&mut *tx).await?, "n")?;
        let from_client = get_i64(&count("client", client).fetch_one(&mut *tx).await?, "n")?;
        tx.commit().await?;
        Ok(RequestCounts {
            for_email,
            from_client,
        })
    }

    /// Issues a sign-in link token for `email`, valid for `ttl` seconds from `now`; returns the
    /// secret (stored only hashed).
    pub async fn create_login_token(&self, email: &str, now: i64, ttl: i64) -> Result<String> {
        let secret = token::generate("rgl")?;
        let mut tx = self.begin_write().await?;
        // Spent and long-expired links are of no use to anyone.
        sqlx::query("DELETE FROM desk_login_tokens WHERE expires_at < $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO desk_login_tokens (token_hash, email, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token::hash_hex(&secret))
        .bind(email.to_string())
        .bind(now)
        .bind(now + ttl)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// What the sign-in link with this secret is worth at `now` (nothing is changed).
    pub async fn login_link_state(&self, secret: &str, now: i64) -> Result<LinkState> {
        let row = sqlx::query(
            "SELECT email, expires_at, used_at FROM desk_login_tokens WHERE token_hash = $1",
        )
        .bind(token::hash_hex(secret))
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(LinkState::Unknown);
        };
        Ok(if get_opt_i64(&r, "used_at")?.is_some() {
            LinkState::Used
        } else if get_i64(&r, "expires_at")? <= now {
            LinkState::Expired
        } else {
            LinkState::Valid(get_str(&r, "email")?)
        })
    }

    /// Spends the sign-in link and opens a session of `session_ttl` seconds, in one write: of
    /// two requests with the same link only one gets a session. Returns the session secret and
    /// the address, or why the link is no good.
    pub async fn redeem_login_link(
        &self,
        secret: &str,
        now: i64,
        session_ttl: i64,
    ) -> Result<std::result::Result<(String, String), LinkState>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE desk_login_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING email",
        )
        .bind(now)
        .bind(token::hash_hex(secret))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return Ok(Err(match self.login_link_state(secret, now).await? {
                // Raced with another redemption between the two reads: spent all the same.
                LinkState::Valid(_) => LinkState::Used,
                other => other,
            }));
        };
        let email = get_str(&row, "email")?;
        let session = token::generate("rgs")?;
        sqlx::query("DELETE FROM desk_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO desk_sessions (id_hash, email, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token::hash_hex(&session))
        .bind(email.clone())
        .bind(now)
        .bind(now + session_ttl)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok((session, email)))
    }

    /// The address signed in with this session secret, if the session exists and has not expired.
    pub async fn session_email(&self, secret: &str, now: i64) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT email FROM desk_sessions WHERE id_hash = $1 AND expires_at > $2")
                .bind(token::hash_hex(secret))
                .bind(now)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| get_str(&r, "email")).transpose()
    }

    /// Ends a session (signing out); returns whether it existed.
    pub async fn end_session(&self, secret: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM desk_sessions WHERE id_hash = $1")
            .bind(token::hash_hex(secret))
            .execute(self.pool())
            .await?
            .rows_affected()
            > 0)
    }
}
