-- dagforge store schema, version 5 (SQLite): the reads of an HTTP API over millions of
-- runs (keyset pages newest first, counts, logs) and the engine heartbeats.
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
ALTER TABLE events ADD COLUMN item INTEGER;
ALTER TABLE events ADD COLUMN attempt INTEGER;
ALTER TABLE events ADD COLUMN level INTEGER;
UPDATE events SET
    node = json_extract(kind, '$.node'),
    item = json_extract(kind, '$.item'),
    attempt = json_extract(kind, '$.attempt'),
    level = CASE json_extract(kind, '$.level')
        WHEN 'trace' THEN 0 WHEN 'debug' THEN 1 WHEN 'info' THEN 2 WHEN 'warn' THEN 3
        ELSE 4 END
WHERE json_extract(kind, '$.type') = 'log';
CREATE INDEX events_logs ON events (run_pk, seq) WHERE level IS NOT NULL;
CREATE INDEX events_node_logs ON events (run_pk, node, seq) WHERE level IS NOT NULL;

-- The global event feed: one row per append, in commit order (SQLite serializes
-- writers, so a later commit always gets a larger `tx`). Events from before this
-- version are not in it.
CREATE TABLE feed (
    tx INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);

-- Engine heartbeats (times in µs).
CREATE TABLE engines (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_beat INTEGER NOT NULL
);
