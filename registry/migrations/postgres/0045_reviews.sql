-- The six-monthly review: the reminder sent for each due date (once), and the one-click renewal
-- links, stored as SHA-256 like every other secret. The due date itself is reviewed_on +
-- review_months, which every registration already has. Keep in step with the other backend's
-- 0045_reviews.sql.

CREATE TABLE review_reminders (
    address  TEXT NOT NULL REFERENCES hosts(address) ON DELETE CASCADE,
    due_on   TEXT NOT NULL,
    sent_at  BIGINT NOT NULL,
    PRIMARY KEY (address, due_on)
);

CREATE TABLE review_tokens (
    token_hash  TEXT PRIMARY KEY,
    address     TEXT NOT NULL REFERENCES hosts(address) ON DELETE CASCADE,
    due_on      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX review_tokens_address ON review_tokens (address);
