DROP TRIGGER workflow_runs_changed ON workflow_runs;
CREATE TRIGGER workflow_runs_changed AFTER UPDATE OR DELETE ON workflow_runs
    FOR EACH ROW EXECUTE FUNCTION notify_row_changed('boxoffice_runs');
DROP FUNCTION notify_run_changed();
