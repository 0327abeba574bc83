-- dagforge store schema, version 8 (SQLite): the execution queue of remote workers.
-- `queue_attempts`: one row per attempt a driving engine (`owner`) handed to the
-- fleet; `queue_reports`: what workers reported about them (logs, progress, the
-- outcome), numbered in the order accepted, read by the owner; `queue_workers`: the
-- workers' heartbeats. Times are microseconds since the epoch, `lease_until`
-- milliseconds of the database's clock (as `runs.lease_until`).
UPDATE dagforge_schema SET version = 8 WHERE id = 1;

CREATE TABLE queue_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner       TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    node        TEXT    NOT NULL,
    item        INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    job         TEXT    NOT NULL,
    input       TEXT    NOT NULL,
    spec        TEXT    NOT NULL,
    lane        TEXT    NOT NULL,
    requires    TEXT    NOT NULL,
    cpu         INTEGER NOT NULL,
    memory      INTEGER NOT NULL,
    slots       INTEGER NOT NULL,
    priority    INTEGER NOT NULL,
    timeout_ms  INTEGER,
    state       TEXT    NOT NULL DEFAULT 'queued',
    worker      TEXT,
    fence       INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    cancel      INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL
);
CREATE INDEX queue_ready ON queue_attempts (priority DESC, id) WHERE state = 'queued';
CREATE INDEX queue_held ON queue_attempts (worker) WHERE state = 'claimed';
CREATE INDEX queue_leases ON queue_attempts (owner, lease_until) WHERE state = 'claimed';

CREATE TABLE queue_reports (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    owner      TEXT    NOT NULL,
    attempt_id INTEGER NOT NULL,
    body       TEXT    NOT NULL
);
CREATE INDEX queue_reports_owner ON queue_reports (owner, seq);

CREATE TABLE queue_workers (
    id         TEXT PRIMARY KEY,
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    lanes      TEXT    NOT NULL,
    tags       TEXT    NOT NULL,
    cpu        INTEGER NOT NULL,
    memory     INTEGER NOT NULL,
    slots      INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    last_beat  INTEGER NOT NULL,
    draining   INTEGER NOT NULL DEFAULT 0
);
