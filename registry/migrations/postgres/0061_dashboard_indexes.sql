-- Indexes for the dashboard's queries. Keep in step with the SQLite backend's
-- 0061_dashboard_indexes.sql (the same statements).

-- The oldest open criticals: open findings of one severity by first sighting.
CREATE INDEX findings_open_age ON findings (status, severity_rank, first_seen);
-- Time to fix: findings resolved in the last year.
CREATE INDEX findings_resolved_at ON findings (resolved_at);
-- Silent agents: each host's newest reports.
CREATE INDEX agent_reports_latest ON agent_reports (address, received_at);
