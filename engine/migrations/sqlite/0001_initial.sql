-- dagforge store schema, version 1 (SQLite).
-- Times are microseconds since the Unix epoch, except `runs.lease_until`, which is
-- milliseconds on the wall clock (leases are compared against the current time).

CREATE TABLE dagforge_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO dagforge_schema (id, version) VALUES (1, 1);

-- Workflow specs, stored once per (name, version, content hash) and shared by runs.
CREATE TABLE workflows (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    UNIQUE (name, version, hash)
);

CREATE TABLE runs (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workflow_id INTEGER NOT NULL REFERENCES workflows (id),
    workflow TEXT NOT NULL,
    version TEXT NOT NULL,
    inputs TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    -- The lease: NULL owner once the run finished.
    lease_owner TEXT,
    lease_until INTEGER,
    fence INTEGER NOT NULL,
    -- Sequence number of the run's last event.
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_workflow ON runs (workflow, id);
CREATE INDEX runs_by_state ON runs (state, id);
CREATE INDEX runs_claimable ON runs (lease_until) WHERE lease_owner IS NOT NULL;

-- The append-only event log: `kind` is the event's JSON.
CREATE TABLE events (
    run_pk INTEGER NOT NULL REFERENCES runs (pk),
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (run_pk, seq)
);

-- One row per (node, item, attempt), kept up to date from the node events.
CREATE TABLE executions (
    run_pk INTEGER NOT NULL REFERENCES runs (pk),
    node TEXT NOT NULL,
    -- -1 for the node itself, else the fan-out item index.
    item INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    -- Sequence number of the first event of this execution (orders them).
    first_seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    output TEXT,
    error TEXT,
    reason TEXT,
    started_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (run_pk, node, item, attempt)
);
