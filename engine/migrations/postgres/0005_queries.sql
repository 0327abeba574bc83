-- dagforge store schema, version 5 (PostgreSQL): the reads of an HTTP API over
-- millions of runs (keyset pages newest first, counts, logs) and the engine heartbeats.
UPDATE dagforge_schema SET version = 5 WHERE id = 1;

-- Runs are listed newest first by (created_at, id), under any mix of filters; each
-- index serves one filter with the page order (no OFFSET, no sort of the matches).
DROP INDEX runs_by_workflow;
DROP INDEX runs_by_state;
CREATE INDEX runs_by_created ON runs (created_at, id);
CREATE INDEX runs_by_workflow ON runs (workflow, created_at, id);
CREATE INDEX runs_by_state ON runs (state, created_at, id);
CREATE INDEX runs_by_workflow_state ON runs (workflow, state, created_at, id);
CREATE INDEX runs_by_lane ON runs (queue, created_at, id) WHERE queue IS NOT NULL;
-- The runs an engine holds (heartbeats count them; cancellation requests read them).
CREATE INDEX runs_by_owner ON runs (lease_owner) WHERE lease_owner IS NOT NULL;

-- Log lines' fields as columns (NULL for other events), so that a run's log is read
-- by index, filtered by node, item, attempt and level, forward or from its end.
-- `level`: 0 trace, 1 debug, 2 info, 3 warn, 4 error.
ALTER TABLE events ADD COLUMN node TEXT;
ALTER TABLE events ADD COLUMN item BIGINT;
ALTER TABLE events ADD COLUMN attempt BIGINT;
ALTER TABLE events ADD COLUMN level SMALLINT;
UPDATE events SET
    node = kind->>'node',
    item = (kind->>'item')::bigint,
    attempt = (kind->>'attempt')::bigint,
    level = CASE kind->>'level'
        WHEN 'trace' THEN 0 WHEN 'debug' THEN 1 WHEN 'info' THEN 2 WHEN 'warn' THEN 3
        ELSE 4 END
WHERE kind->>'type' = 'log';
CREATE INDEX events_logs ON events (run_pk, seq) WHERE level IS NOT NULL;
CREATE INDEX events_node_logs ON events (run_pk, node, seq) WHERE level IS NOT NULL;

-- The global event feed: one row per run per append transaction. `tx` is the
-- writing transaction's id: readers take only rows of transactions older than every
-- transaction still running (`pg_snapshot_xmin`), so a transaction that commits
-- late cannot slip in behind a reader's cursor. Events from before this version are
-- not in it.
CREATE TABLE feed (
    tx XID8 NOT NULL DEFAULT pg_current_xact_id(),
    run_pk BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (tx, run_pk)
);

-- Engine heartbeats (times in µs).
CREATE TABLE engines (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_beat BIGINT NOT NULL
);
