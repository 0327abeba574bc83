-- dagforge store schema, version 6 (SQLite): runs counted by workflow and state, kept
-- by triggers in the transaction of every change, so that counting a million runs by
-- state reads a few rows instead of a million. Each (workflow, state) is spread over
-- 16 rows (`shard`, the run's pk mod 16), summed when read.
UPDATE dagforge_schema SET version = 6 WHERE id = 1;

CREATE TABLE run_counts (
    workflow TEXT NOT NULL,
    state TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (workflow, state, shard)
);
INSERT INTO run_counts (workflow, state, shard, n)
SELECT workflow, state, pk % 16, COUNT(*) FROM runs GROUP BY workflow, state, pk % 16;

CREATE TRIGGER run_counts_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_counts (workflow, state, shard, n)
    VALUES (NEW.workflow, NEW.state, NEW.pk % 16, 1)
    ON CONFLICT (workflow, state, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER run_counts_update AFTER UPDATE OF state ON runs
WHEN OLD.state <> NEW.state BEGIN
    UPDATE run_counts SET n = n - 1
    WHERE workflow = OLD.workflow AND state = OLD.state AND shard = OLD.pk % 16;
    INSERT INTO run_counts (workflow, state, shard, n)
    VALUES (NEW.workflow, NEW.state, NEW.pk % 16, 1)
    ON CONFLICT (workflow, state, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER run_counts_delete AFTER DELETE ON runs BEGIN
    UPDATE run_counts SET n = n - 1
    WHERE workflow = OLD.workflow AND state = OLD.state AND shard = OLD.pk % 16;
END;
