-- Workflow kinds are registered in code (`workers/src/kinds`), not listed here:
-- a run of a kind the engine does not know is refused by the engine.
ALTER TABLE workflow_runs DROP CONSTRAINT workflow_runs_kind_check;
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_kind_format
    CHECK (kind ~ '^[a-z][a-z0-9_]{0,63}$');

-- What the run's owner sees (the kind's status view), written with every
-- transition so that a status read needs no knowledge of the kind.
ALTER TABLE workflow_runs ADD COLUMN view jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Child runs: started in their parent's transaction, at most once per key.
ALTER TABLE workflow_runs ADD COLUMN parent_id uuid REFERENCES workflow_runs (id);
ALTER TABLE workflow_runs ADD COLUMN child_key text;
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_child_has_key
    CHECK ((parent_id IS NULL) = (child_key IS NULL));
CREATE UNIQUE INDEX workflow_runs_parent_child_key ON workflow_runs (parent_id, child_key)
    WHERE parent_id IS NOT NULL;
