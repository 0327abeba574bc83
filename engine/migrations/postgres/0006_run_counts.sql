-- dagforge store schema, version 6 (PostgreSQL): runs counted by workflow and state,
-- kept by triggers in the transaction of every change, so that counting a million
-- runs by state reads a few rows instead of a million. Each (workflow, state) is
-- spread over 16 rows (`shard`, the run's pk mod 16, summed when read), so that
-- engines changing runs of one workflow at once seldom wait on one row's lock.
UPDATE dagforge_schema SET version = 6 WHERE id = 1;

CREATE TABLE run_counts (
    workflow TEXT NOT NULL,
    state TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (workflow, state, shard)
);
INSERT INTO run_counts (workflow, state, shard, n)
SELECT workflow, state, (pk % 16)::int, COUNT(*) FROM runs GROUP BY 1, 2, 3;

-- The function's `search_path` is the schema's (as at migration), whoever updates.
CREATE FUNCTION run_counts_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE run_counts SET n = n - 1
        WHERE workflow = OLD.workflow AND state = OLD.state AND shard = OLD.pk % 16;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO run_counts (workflow, state, shard, n)
        VALUES (NEW.workflow, NEW.state, NEW.pk % 16, 1)
        ON CONFLICT (workflow, state, shard) DO UPDATE SET n = run_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER run_counts_insert AFTER INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION run_counts_change();
CREATE TRIGGER run_counts_update AFTER UPDATE OF state ON runs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION run_counts_change();
CREATE TRIGGER run_counts_delete AFTER DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION run_counts_change();
