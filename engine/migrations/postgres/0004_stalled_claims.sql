-- dagforge store schema, version 4 (PostgreSQL): poison runs. `stalls` counts the
-- claims of a run since it last made progress (executions settled), `settled` how many
-- of its executions had settled at its last claim.
UPDATE dagforge_schema SET version = 4 WHERE id = 1;
ALTER TABLE runs ADD COLUMN stalls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN settled BIGINT NOT NULL DEFAULT 0;
