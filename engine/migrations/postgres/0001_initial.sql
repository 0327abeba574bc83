-- dagforge store schema, version 1 (PostgreSQL). Applied inside the store's own
-- schema (the connection's search_path).
-- JSON columns are `json`, not `jsonb`: stored as given (cheaper to write, and a
-- \u0000 in a string is accepted). Times are microseconds since the Unix epoch,
-- except `runs.lease_until`, which is a
-- timestamptz compared against the database clock (`now()`).

CREATE TABLE dagforge_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO dagforge_schema (id, version) VALUES (1, 1);

-- Workflow specs, stored once per (name, version, content hash) and shared by runs.
CREATE TABLE workflows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    UNIQUE (name, version, hash)
);

CREATE TABLE runs (
    pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    workflow_id BIGINT NOT NULL REFERENCES workflows (id),
    workflow TEXT NOT NULL,
    version TEXT NOT NULL,
    inputs JSON NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    -- The lease: NULL owner once the run finished.
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    fence BIGINT NOT NULL,
    -- Sequence number of the run's last event.
    last_seq BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_workflow ON runs (workflow, id);
CREATE INDEX runs_by_state ON runs (state, id);
CREATE INDEX runs_claimable ON runs (lease_until) WHERE lease_owner IS NOT NULL;

-- The append-only event log: `kind` is the event's JSON.
CREATE TABLE events (
    run_pk BIGINT NOT NULL REFERENCES runs (pk),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind JSON NOT NULL,
    PRIMARY KEY (run_pk, seq)
);

-- One row per (node, item, attempt), kept up to date from the node events.
CREATE TABLE executions (
    run_pk BIGINT NOT NULL REFERENCES runs (pk),
    node TEXT NOT NULL,
    -- -1 for the node itself, else the fan-out item index.
    item BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    -- Sequence number of the first event of this execution (orders them).
    first_seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    output JSON,
    error JSON,
    reason TEXT,
    started_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (run_pk, node, item, attempt)
);
