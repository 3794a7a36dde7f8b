-- A batch of checkout starts holds its winners' seats before it inserts their
-- runs, so that each run is inserted as its hold leaves it (one row version,
-- not an insert and then an update of every winner). The hold rows then come
-- before their runs inside that one transaction: the batch defers the check
-- of this key to its commit (`SET CONSTRAINTS holds_run_id_fkey DEFERRED`,
-- `hold_batch::check_runs_at_commit`). Every other transaction still checks
-- it at each statement.
ALTER TABLE holds ALTER CONSTRAINT holds_run_id_fkey DEFERRABLE INITIALLY IMMEDIATE;
