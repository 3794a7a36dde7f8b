-- How many tickets one participant may have of an event, counted over their
-- confirmed bookings and open checkouts. NULL: no limit beyond each order's.
ALTER TABLE events ADD COLUMN max_tickets_per_participant integer
    CONSTRAINT events_max_tickets_per_participant_check CHECK (max_tickets_per_participant BETWEEN 1 AND 1000);

-- A participant's open checkouts of an event: read at every start, which allows
-- one at a time (under a per participant and event lock).
CREATE INDEX workflow_runs_open_checkout_idx
    ON workflow_runs (owner_id, (state ->> 'event_id'))
    WHERE kind = 'checkout' AND status IN ('running', 'waiting', 'compensating');
