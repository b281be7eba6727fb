-- Vantages (postgres): which vantage points saw a finding, and which vantage points look at the
-- campus from outside its firewall. Keep in step with migrations/sqlite/0055_vantages.sql.

-- JSON array of vantage names whose latest covering sweep saw the finding (sorted). '[]' for
-- findings the registry or an agent made, and for rows older than this column: any covering
-- sweep may resolve those, as before.
ALTER TABLE findings ADD COLUMN vantages TEXT NOT NULL DEFAULT '[]';

-- A vantage not listed here counts as internal.
CREATE TABLE vantages (
    name        TEXT PRIMARY KEY,
    exposure    TEXT NOT NULL CHECK (exposure IN ('external', 'internal')),
    updated_at  BIGINT NOT NULL
);
