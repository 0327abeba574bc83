-- dagforge store schema, version 3 (SQLite): find the next delayed run fast.
UPDATE dagforge_schema SET version = 3 WHERE id = 1;
CREATE INDEX runs_waiting ON runs (lease_until) WHERE lease_owner = 'queue';
