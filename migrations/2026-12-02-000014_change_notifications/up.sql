-- The API keeps sessions (with their users' roles) and runs' status views in
-- memory, and must hear at once when one of them changes: a logout, a
-- disabled user or a new role applies to the next request, and a status read
-- shows the run's last committed change. Each trigger sends the changed row's
-- id on its channel; Postgres delivers a notification only when its
-- transaction commits (a rolled-back change says nothing) and sends one per
-- row and transaction however often the row changed in it.

CREATE FUNCTION notify_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], OLD.id::text);
    RETURN NULL;
END
$$;

-- A session stops being usable when it is revoked or expires; a refresh moves
-- its expiry.
CREATE TRIGGER sessions_changed AFTER UPDATE OF revoked_at, expires_at, user_id OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION notify_row_changed('boxoffice_sessions');

-- A user's roles and whether it is disabled are part of every one of its
-- sessions as the API keeps them.
CREATE TRIGGER users_changed AFTER UPDATE OF roles, disabled_at OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_row_changed('boxoffice_users');

-- Every change of a run may change what its owner sees.
CREATE TRIGGER workflow_runs_changed AFTER UPDATE OR DELETE ON workflow_runs
    FOR EACH ROW EXECUTE FUNCTION notify_row_changed('boxoffice_runs');
