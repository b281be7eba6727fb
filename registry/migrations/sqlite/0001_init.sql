-- Initial schema (SQLite). Keep in step with migrations/postgres/0001_init.sql:
-- the same tables, columns and constraints, only the dialect differs.
-- Every integer is 64-bit so the Any driver decodes them as i64 on both backends.

CREATE TABLE hosts (
    address        TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('mail-direct', 'mail-via-gateway', 'internal-only', 'non-mail')),
    admin_name     TEXT NOT NULL,
    admin_email    TEXT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    registered_on  TEXT NOT NULL,
    reviewed_on    TEXT NOT NULL,
    review_months  INTEGER NOT NULL DEFAULT 6,
    status         TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'retired')),
    missed_sweeps  INTEGER NOT NULL DEFAULT 0,
    last_listening_at INTEGER
);

CREATE TABLE networks (
    cidr         TEXT PRIMARY KEY,
    owner_name   TEXT NOT NULL,
    owner_email  TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT ''
);

CREATE TABLE sweeps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    vantage       TEXT NOT NULL,
    targets       TEXT NOT NULL,
    ports         TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    recorded_at   INTEGER NOT NULL,
    results       INTEGER NOT NULL DEFAULT 0,
    open_ports    INTEGER NOT NULL DEFAULT 0,
    smtp_listeners INTEGER NOT NULL DEFAULT 0,
    findings_opened   INTEGER NOT NULL DEFAULT 0,
    findings_resolved INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE observations (
    sweep_id  INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    address   TEXT NOT NULL,
    port      INTEGER NOT NULL,
    state     TEXT NOT NULL,
    mta       TEXT,
    banner    TEXT,
    ptr       TEXT,
    result    TEXT NOT NULL,
    PRIMARY KEY (sweep_id, address, port)
);
CREATE INDEX observations_address ON observations (address);

CREATE TABLE findings (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    address       TEXT NOT NULL,
    port          INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('sweep', 'registry', 'agent')),
    severity      TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    summary       TEXT NOT NULL,
    evidence      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    resolved_at   INTEGER,
    last_sweep    INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
    UNIQUE (address, port, kind)
);
CREATE INDEX findings_status ON findings (status, severity_rank);

CREATE TABLE agent_tokens (
    address     TEXT PRIMARY KEY REFERENCES hosts(address) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE agent_reports (
    address       TEXT NOT NULL REFERENCES hosts(address) ON DELETE CASCADE,
    report_id     TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    generated_at  INTEGER NOT NULL,
    hostname      TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    mta_enabled   INTEGER NOT NULL,
    mta_listening INTEGER NOT NULL,
    actions       INTEGER NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (address, report_id)
);
