-- Where a finding was tested from (SQLite): the local address the sweep that last saw a finding tested the host
-- from (NULL for findings the registry or an agent made, and for rows older than this column).
-- A relay open from inside the campus may be closed from outside it.
-- Keep in step with migrations/postgres/0004_finding_tested_from.sql.

ALTER TABLE findings ADD COLUMN tested_from TEXT;
