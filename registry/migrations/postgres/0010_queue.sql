-- Sharded sweeps on the job queue (PostgreSQL only). The queue itself (claiming, leases,
-- heartbeats, attempts) lives in the job engine's own schema; these tables hold what a sweep is,
-- how far each shard got, and the results written at each checkpoint.

-- One planned sweep: what it covers and the command line every worker re-reads.
CREATE TABLE queue_sweeps (
    id BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    -- JSON array of strings: the `sweep` arguments, parsed again by each worker.
    sweep_args TEXT NOT NULL,
    -- JSON array of port numbers.
    ports TEXT NOT NULL,
    shard_size BIGINT NOT NULL,
    addresses BIGINT NOT NULL
);

-- One vantage of a sweep: merged into the registry when its last shard ends.
CREATE TABLE queue_vantages (
    sweep_id BIGINT NOT NULL REFERENCES queue_sweeps (id),
    vantage TEXT NOT NULL,
    -- running | merging | merged
    state TEXT NOT NULL DEFAULT 'running',
    started_at BIGINT,
    finished_at BIGINT,
    registry_sweep_id BIGINT,
    PRIMARY KEY (sweep_id, vantage)
);

-- One shard of one vantage: an inclusive address range and its checkpoint.
CREATE TABLE queue_shards (
    sweep_id BIGINT NOT NULL,
    vantage TEXT NOT NULL,
    shard BIGINT NOT NULL,
    first_address TEXT NOT NULL,
    last_address TEXT NOT NULL,
    addresses BIGINT NOT NULL,
    -- How many of the shard's addresses are done (the checkpoint).
    done BIGINT NOT NULL DEFAULT 0,
    -- pending | running | done | quarantined
    state TEXT NOT NULL DEFAULT 'pending',
    -- The worker that wrote the last checkpoint, and the engine attempt it held.
    worker TEXT,
    attempt INTEGER,
    open_ports BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT,
    PRIMARY KEY (sweep_id, vantage, shard),
    FOREIGN KEY (sweep_id, vantage) REFERENCES queue_vantages (sweep_id, vantage)
);

-- Results of finished checkpoints: one row per address and port (a redone checkpoint overwrites).
CREATE TABLE queue_results (
    sweep_id BIGINT NOT NULL,
    vantage TEXT NOT NULL,
    address TEXT NOT NULL,
    port INTEGER NOT NULL,
    shard BIGINT NOT NULL,
    -- JSON of the HostResult.
    host TEXT NOT NULL,
    findings BIGINT NOT NULL,
    written_by TEXT NOT NULL,
    PRIMARY KEY (sweep_id, vantage, address, port)
);
