-- The relay of every `work` process listens on `boxoffice_outbox` and moves
-- messages to Redis as soon as one is committed, instead of at its next idle
-- look: a run started by the API reaches a worker without that wait.
-- Only a message due at once says so (a timer or a backstop comes due later,
-- and the relay's idle look finds it then). "At once" allows a second: the
-- time is the writer's clock, taken during the transaction. Postgres sends the notification
-- when the transaction commits, once per transaction however many messages it
-- wrote.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('boxoffice_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_due_now AFTER INSERT ON outbox
    FOR EACH ROW WHEN (NEW.available_at <= clock_timestamp() + interval '1 second')
    EXECUTE FUNCTION outbox_notify();
