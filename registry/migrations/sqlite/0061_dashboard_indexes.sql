-- Indexes for the dashboard's queries. Keep in step with the PostgreSQL backend's
-- 0061_dashboard_indexes.sql (the same statements).

-- The oldest open criticals: open findings of one severity by first sighting.
CREATE INDEX findings_open_age ON findings (status, severity_rank, first_seen);
-- Time to fix: findings resolved in the last year, read from the index alone.
CREATE INDEX findings_fix_time ON findings (status, resolved_at, kind, address, first_seen);
-- The history: findings opened and resolved per severity and day, counted from the indexes
-- alone (a finding's row carries its evidence and transcript; these entries are a few bytes).
CREATE INDEX findings_history_opened ON findings (severity_rank, first_seen);
CREATE INDEX findings_history_resolved ON findings (severity_rank, resolved_at);
-- Silent agents: each host's newest reports.
CREATE INDEX agent_reports_latest ON agent_reports (address, received_at);
