-- Applications at the registration desk (mail-direct, mail-via-gateway, internal-only), with the
-- result of each check run on submission. Keep in step with the other backend's
-- 0041_applications.sql.

CREATE TABLE desk_applications (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    address        TEXT NOT NULL,
    hostname       TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('mail-direct', 'mail-via-gateway', 'internal-only')),
    contact_name   TEXT NOT NULL,
    contact_email  TEXT NOT NULL,
    lang           TEXT NOT NULL CHECK (lang IN ('en', 'ja')),
    mail_domain    TEXT,
    note           TEXT NOT NULL DEFAULT '',
    applicant      TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('approved', 'held', 'needs-changes', 'cancelled')),
    checks         TEXT NOT NULL,
    findings       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX desk_applications_address ON desk_applications (address);
CREATE INDEX desk_applications_applicant ON desk_applications (applicant);
