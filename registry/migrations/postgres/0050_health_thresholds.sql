-- Per-host thresholds of the queue health findings (mail-queue-backlog, bounce-burst). A NULL
-- threshold, or no row, means the registry's default. Keep in step with the other backend's
-- 0050_health_thresholds.sql.
CREATE TABLE host_health_thresholds (
    address                  TEXT PRIMARY KEY REFERENCES hosts(address) ON DELETE CASCADE,
    queue_backlog_threshold  BIGINT CHECK (queue_backlog_threshold >= 1),
    bounce_burst_threshold   BIGINT CHECK (bounce_burst_threshold >= 1),
    set_by                   TEXT NOT NULL,
    set_at                   BIGINT NOT NULL
);
