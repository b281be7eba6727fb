-- The registration desk's sign-in: administrators the security team added by hand, one-time
-- sign-in links, sessions and the sign-in requests counted for rate limiting. Secrets (link
-- tokens, session ids) are kept only as their SHA-256. Keep in step with the other backend's
-- 0040_desk_sessions.sql.

-- Administrators who may sign in without a registration or network block of their own.
CREATE TABLE desk_admins (
    email     TEXT PRIMARY KEY,
    name      TEXT NOT NULL DEFAULT '',
    lang      TEXT CHECK (lang IN ('en', 'ja')),
    added_by  TEXT NOT NULL,
    added_at  BIGINT NOT NULL
);

-- One-time sign-in links: valid until expires_at, spent when used_at is set.
CREATE TABLE desk_login_tokens (
    token_hash  TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- Signed-in administrators.
CREATE TABLE desk_sessions (
    id_hash     TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX desk_sessions_expiry ON desk_sessions (expires_at);

-- Every sign-in request, known address or not, so the limits cannot tell them apart.
CREATE TABLE desk_login_requests (
    at      BIGINT NOT NULL,
    email   TEXT NOT NULL,
    client  TEXT NOT NULL
);
CREATE INDEX desk_login_requests_email ON desk_login_requests (email, at);
CREATE INDEX desk_login_requests_client ON desk_login_requests (client, at);
