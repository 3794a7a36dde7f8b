DROP INDEX workflow_runs_parent_child_key;
ALTER TABLE workflow_runs DROP CONSTRAINT workflow_runs_child_has_key;
ALTER TABLE workflow_runs DROP COLUMN child_key;
ALTER TABLE workflow_runs DROP COLUMN parent_id;
ALTER TABLE workflow_runs DROP COLUMN view;
ALTER TABLE workflow_runs DROP CONSTRAINT workflow_runs_kind_format;
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_kind_check
    CHECK (kind IN ('checkout', 'refund', 'waitlist_offer', 'reminder'));
