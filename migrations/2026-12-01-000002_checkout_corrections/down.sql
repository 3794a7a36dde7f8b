DROP FUNCTION lock_and_find_open_checkout(uuid, uuid, text[]);
DROP INDEX workflow_runs_open_checkout_idx;
ALTER TABLE events DROP COLUMN max_tickets_per_participant;
