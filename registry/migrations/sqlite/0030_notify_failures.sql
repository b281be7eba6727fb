-- Failed notify deliveries (SQLite), counted by /metrics; the findings stay unsent and are tried
-- again by the next run. Keep in step with migrations/postgres/0030_notify_failures.sql.

CREATE TABLE notify_failures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_email  TEXT NOT NULL,
    failed_at    INTEGER NOT NULL,
    error        TEXT NOT NULL
);
