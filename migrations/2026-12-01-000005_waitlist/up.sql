-- Waitlists: entries in serving order, and the units they wait for.

-- Per event: whether sold-out types take a waitlist, and how long an offer lasts.
ALTER TABLE events ADD COLUMN waitlist_enabled boolean NOT NULL DEFAULT true;
ALTER TABLE events ADD COLUMN waitlist_offer_minutes integer NOT NULL DEFAULT 720
    CHECK (waitlist_offer_minutes BETWEEN 5 AND 10080);

-- Units wanted by entries still waiting (not yet offered). Public sale may take
-- only `capacity - sold - held - waiting_units`, so a unit freed while anyone
-- waits is the waitlist's in the very transaction that freed it. Offering an
-- entry moves its units from here into `held` (the offer run's hold).
ALTER TABLE ticket_types ADD COLUMN waiting_units integer NOT NULL DEFAULT 0
    CHECK (waiting_units >= 0);
CREATE INDEX ticket_types_waitlisted_idx ON ticket_types (id) WHERE waiting_units > 0;

CREATE TABLE waitlist_entries (
    id               uuid PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES events (id),
    ticket_type_id   uuid NOT NULL REFERENCES ticket_types (id),
    participant_id   uuid NOT NULL REFERENCES users (id),
    quantity         integer NOT NULL CHECK (quantity > 0),
    -- vip entries are served before standard ones, each tier by join time
    priority         text NOT NULL DEFAULT 'standard' CHECK (priority IN ('vip', 'standard')),
    status           text NOT NULL DEFAULT 'waiting'
        CHECK (status IN ('waiting', 'offered', 'accepted', 'expired', 'declined', 'left')),
    joined_at        timestamptz NOT NULL DEFAULT now(),
    -- Since when this entry, first in line, has not fitted in the free units
    -- (the clock of the serving policy in ops/DECISIONS.md); NULL otherwise.
    blocked_since    timestamptz,
    -- The waitlist_offer run holding its units, once offered.
    offer_run_id     uuid REFERENCES workflow_runs (id),
    offered_at       timestamptz,
    offer_expires_at timestamptz,
    -- The checkout that adopted the offer's units, once accepted.
    checkout_run_id  uuid REFERENCES workflow_runs (id),
    ended_at         timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'waiting') = (offer_run_id IS NULL)),
    CHECK (status <> 'accepted' OR checkout_run_id IS NOT NULL)
);
-- One active entry per participant and ticket type.
CREATE UNIQUE INDEX waitlist_entries_one_active_idx
    ON waitlist_entries (participant_id, ticket_type_id) WHERE status IN ('waiting', 'offered');
-- Serving order of the entries still waiting.
CREATE INDEX waitlist_entries_serving_idx
    ON waitlist_entries (ticket_type_id, (priority <> 'vip'), joined_at, id) WHERE status = 'waiting';
CREATE INDEX waitlist_entries_event_idx ON waitlist_entries (event_id, status);
CREATE INDEX waitlist_entries_participant_idx ON waitlist_entries (participant_id, joined_at DESC);
CREATE UNIQUE INDEX waitlist_entries_offer_run_idx ON waitlist_entries (offer_run_id) WHERE offer_run_id IS NOT NULL;
CREATE UNIQUE INDEX waitlist_entries_checkout_run_idx ON waitlist_entries (checkout_run_id) WHERE checkout_run_id IS NOT NULL;
