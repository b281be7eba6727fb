-- Notices (SQLite): what `relayguard notify` sent, so the next run sends only news.
-- Keep in step with migrations/postgres/0002_notices.sql.

CREATE TABLE notices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_email  TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    sent_at      INTEGER NOT NULL
);
CREATE INDEX notices_admin ON notices (admin_email, sent_at);

-- One row per finding a notice reported, with the state it was reported in: a later run
-- compares the finding's current status and severity with the last notice's.
CREATE TABLE notice_findings (
    notice_id           INTEGER NOT NULL REFERENCES notices(id) ON DELETE CASCADE,
    finding_id          INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    status_at_notice    TEXT NOT NULL CHECK (status_at_notice IN ('open', 'resolved')),
    severity_at_notice  TEXT NOT NULL,
    PRIMARY KEY (notice_id, finding_id)
);
CREATE INDEX notice_findings_finding ON notice_findings (finding_id);
