-- Scheduled sweeps (PostgreSQL only): a cron expression and the command line that plans the
-- sweep; one row per fired slot, whose primary key makes a slot fire once however many
-- processes run the scheduler.
CREATE TABLE queue_schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    -- JSON array of strings: the `schedule add` command line, parsed again at each slot.
    sweep_args TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE queue_schedule_slots (
    name TEXT NOT NULL REFERENCES queue_schedules (name) ON DELETE CASCADE,
    slot BIGINT NOT NULL,
    fired_at BIGINT NOT NULL,
    sweep_id BIGINT REFERENCES queue_sweeps (id),
    PRIMARY KEY (name, slot)
);
