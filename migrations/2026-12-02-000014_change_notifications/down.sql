DROP TRIGGER workflow_runs_changed ON workflow_runs;
DROP TRIGGER users_changed ON users;
DROP TRIGGER sessions_changed ON sessions;
DROP FUNCTION notify_row_changed();
