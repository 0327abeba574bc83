-- dagforge store schema, version 2 (PostgreSQL): delayed runs, priorities, idempotency
-- keys, recurring schedules.
UPDATE dagforge_schema SET version = 2 WHERE id = 1;

-- Higher runs first when capacity is short.
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- When a delayed run may start (µs); its lease expires then, which makes it claimable.
ALTER TABLE runs ADD COLUMN not_before BIGINT;
-- The enqueuer's idempotency key: one run per key.
ALTER TABLE runs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX runs_by_key ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The lane the run waits in; a lane may cap how many of its runs go at once.
ALTER TABLE runs ADD COLUMN queue TEXT;
-- Set to ask the engine driving the run (any process) to cancel it.
ALTER TABLE runs ADD COLUMN cancel_requested BIGINT;
CREATE INDEX runs_by_queue ON runs (queue, state) WHERE queue IS NOT NULL;
DROP INDEX runs_claimable;
CREATE INDEX runs_claimable ON runs (priority DESC, lease_until) WHERE lease_owner IS NOT NULL;

-- Lanes with a cap on their runs going at once (a lane without a row has none).
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    max_running INTEGER NOT NULL
);

-- Recurring schedules: `next_fire` is moved on by exactly one engine per fire.
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    cron TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    inputs JSON NOT NULL,
    -- Overlap and missed-fire policies, jitter, priority.
    options JSON NOT NULL,
    enabled BOOLEAN NOT NULL,
    -- µs; NULL: the schedule never fires again.
    next_fire BIGINT,
    last_fire BIGINT,
    last_run UUID,
    -- Why the last due fire started no run (an overlap skip), if it did not.
    note TEXT,
    updated_at BIGINT NOT NULL
);
