-- How many tickets one participant may have of an event, counted over their
-- confirmed bookings and open checkouts. NULL: no limit beyond each order's.
ALTER TABLE events ADD COLUMN max_tickets_per_participant integer
    CONSTRAINT events_max_tickets_per_participant_check CHECK (max_tickets_per_participant BETWEEN 1 AND 1000);

-- A participant's open checkouts of an event: read at every start, which allows
-- one at a time (under a per participant and event lock).
CREATE INDEX workflow_runs_open_checkout_idx
    ON workflow_runs (owner_id, (state ->> 'event_id'))
    WHERE kind = 'checkout' AND status IN ('running', 'waiting', 'compensating');

-- Takes the lock on (participant, event) for the rest of the transaction and
-- returns the participant's open checkout of the event, if any, in one round
-- trip. VOLATILE: its query takes a fresh snapshot after the lock is granted,
-- so it sees the run of a start that held the lock before. A run is open while
-- it is running, waiting or compensating, except at `idle_steps` (steps that
-- hold nothing).
CREATE FUNCTION lock_and_find_open_checkout(owner uuid, event uuid, idle_steps text[])
RETURNS TABLE (run_id uuid, idempotency_key text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7414180, hashtext(owner::text || ':' || event::text));
    RETURN QUERY
        SELECT r.id, r.idempotency_key FROM workflow_runs r
         WHERE r.kind = 'checkout' AND r.owner_id = owner AND r.state ->> 'event_id' = event::text
           AND r.status IN ('running', 'waiting', 'compensating')
           AND NOT (r.step = ANY (idle_steps))
         ORDER BY r.created_at
         LIMIT 1;
END
$$;
