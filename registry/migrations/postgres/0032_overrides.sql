-- Overrides of findings (accepted risks, false positives) and the audit log that records every
-- change to them. Keep in step with the other backend's 0032_overrides.sql.

-- One override per finding. It holds while its date has not passed and the finding's evidence
-- is what it was when the override was made (evidence_key: severity and the accepted tests).
CREATE TABLE finding_overrides (
    finding_id    BIGINT PRIMARY KEY REFERENCES findings(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('accepted-risk', 'false-positive')),
    reason        TEXT NOT NULL,
    made_by       TEXT NOT NULL,
    made_at       BIGINT NOT NULL,
    until_date    TEXT,
    evidence_key  TEXT NOT NULL
);

-- Who changed what, when: append only.
CREATE TABLE audit_log (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL
);
