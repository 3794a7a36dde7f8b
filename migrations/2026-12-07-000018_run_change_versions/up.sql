-- A run's change notification names the version the run was changed to
-- (`<id>:<version>`), so that the API's long polls learn that a run moved
-- without reading it (`api::routes::workflows::watch`). A deleted run's names
-- its id alone, as before: whoever waits on it reads it and finds it gone.
-- Every update now sends its own notification (payloads differ by version,
-- so Postgres no longer folds a row's changes in one transaction into one).
CREATE FUNCTION notify_run_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('boxoffice_runs', OLD.id::text);
    ELSE
        PERFORM pg_notify('boxoffice_runs', NEW.id::text || ':' || NEW.version::text);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER workflow_runs_changed ON workflow_runs;
CREATE TRIGGER workflow_runs_changed AFTER UPDATE OR DELETE ON workflow_runs
    FOR EACH ROW EXECUTE FUNCTION notify_run_changed();
