-- dagforge store schema, version 7 (PostgreSQL): nothing changes here. (Version 7
-- moved SQLite's feed rows into a trigger; PostgreSQL writes them in the append's one
-- statement already.)
UPDATE dagforge_schema SET version = 7 WHERE id = 1;
