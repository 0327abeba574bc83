-- dagforge store schema, version 8 (PostgreSQL): the execution queue of remote workers.
-- `queue_attempts`: one row per attempt a driving engine (`owner`) handed to the
-- fleet; `queue_reports`: what workers reported about them (logs, progress, the
-- outcome), numbered in the order accepted, read by the owner; `queue_workers`: the
-- workers' heartbeats. Times are microseconds since the epoch, `lease_until`
-- a `timestamptz` compared with `now()`.
UPDATE dagforge_schema SET version = 8 WHERE id = 1;

CREATE TABLE queue_attempts (
    id          bigserial PRIMARY KEY,
    owner       text    NOT NULL,
    run_id      text    NOT NULL,
    node        text    NOT NULL,
    item        bigint  NOT NULL,
    attempt     bigint  NOT NULL,
    job         text    NOT NULL,
    input       text    NOT NULL,
    spec        text    NOT NULL,
    lane        text    NOT NULL,
    requires    text    NOT NULL,
    cpu         bigint  NOT NULL,
    memory      bigint  NOT NULL,
    slots       bigint  NOT NULL,
    priority    bigint  NOT NULL,
    timeout_ms  bigint,
    state       text    NOT NULL DEFAULT 'queued',
    worker      text,
    fence       bigint  NOT NULL DEFAULT 0,
    lease_until timestamptz,
    cancel      boolean NOT NULL DEFAULT false,
    enqueued_at bigint  NOT NULL
);
CREATE INDEX queue_ready ON queue_attempts (priority DESC, id) WHERE state = 'queued';
CREATE INDEX queue_held ON queue_attempts (worker) WHERE state = 'claimed';
CREATE INDEX queue_leases ON queue_attempts (owner, lease_until) WHERE state = 'claimed';

CREATE TABLE queue_reports (
    seq        bigserial PRIMARY KEY,
    owner      text    NOT NULL,
    attempt_id bigint  NOT NULL,
    body       text    NOT NULL
);
CREATE INDEX queue_reports_owner ON queue_reports (owner, seq);

CREATE TABLE queue_workers (
    id         text PRIMARY KEY,
    host       text    NOT NULL,
    pid        bigint  NOT NULL,
    lanes      text    NOT NULL,
    tags       text    NOT NULL,
    cpu        bigint  NOT NULL,
    memory     bigint  NOT NULL,
    slots      bigint  NOT NULL,
    started_at bigint  NOT NULL,
    last_beat  bigint  NOT NULL,
    draining   boolean NOT NULL DEFAULT false
);
