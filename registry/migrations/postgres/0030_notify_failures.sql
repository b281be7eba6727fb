-- Failed notify deliveries (PostgreSQL), counted by /metrics; the findings stay unsent and are
-- tried again by the next run. Keep in step with migrations/sqlite/0030_notify_failures.sql.

CREATE TABLE notify_failures (
    id           BIGSERIAL PRIMARY KEY,
    admin_email  TEXT NOT NULL,
    failed_at    BIGINT NOT NULL,
    error        TEXT NOT NULL
);
