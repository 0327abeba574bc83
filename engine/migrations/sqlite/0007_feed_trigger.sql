-- dagforge store schema, version 7 (SQLite): the global feed's rows written by a
-- trigger on the append's lease-checking update of `runs` (one row per run whose log
-- grew), instead of a statement of their own in every append transaction.
UPDATE dagforge_schema SET version = 7 WHERE id = 1;

CREATE TRIGGER feed_append AFTER UPDATE OF last_seq ON runs
WHEN NEW.last_seq > OLD.last_seq BEGIN
    INSERT INTO feed (run_pk, first_seq, last_seq)
    VALUES (NEW.pk, OLD.last_seq + 1, NEW.last_seq);
END;
