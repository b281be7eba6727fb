-- Indexes for the keyset-paged lists and the dashboard. Keep in step with the SQLite
-- backend's 0060_list_indexes.sql (the same statements).
-- Each list reads "WHERE filter AND (sort key, id) < (last row) ORDER BY sort key DESC, id DESC
-- LIMIT n": an index on (filter columns, sort key, id) lets that start where the last page ended.

CREATE INDEX findings_page ON findings (severity_rank, id);
CREATE INDEX findings_page_status ON findings (status, severity_rank, id);
CREATE INDEX findings_page_kind ON findings (kind, severity_rank, id);
CREATE INDEX findings_page_address ON findings (address, severity_rank, id);
-- The dashboard's history reads findings by when they were first seen and resolved.
CREATE INDEX findings_first_seen ON findings (first_seen);
CREATE INDEX hosts_page_status ON hosts (status, address);
CREATE INDEX hosts_page_role ON hosts (role, address);
CREATE INDEX sweeps_page_vantage ON sweeps (vantage, id);
CREATE INDEX agent_reports_page ON agent_reports (received_at, address, report_id);
