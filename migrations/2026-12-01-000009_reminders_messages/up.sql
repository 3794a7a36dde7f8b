-- Reminders and organizer messages: each is a workflow run that waits for its
-- time (the run's `wake_at`) and then emails its recipients in batches.

-- One reminder run per event and offset: the primary key is what keeps two
-- planners (one per worker process) from starting a second one. A row is
-- deleted when its offset is taken off the event, so putting it back plans it
-- again (the notifications' dedupe keys still send nobody a second copy).
CREATE TABLE event_reminders (
    event_id       uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    offset_minutes integer NOT NULL CHECK (offset_minutes > 0),
    -- Deferred: the planner claims the pair before it creates the run.
    run_id         uuid NOT NULL UNIQUE REFERENCES workflow_runs (id) DEFERRABLE INITIALLY DEFERRED,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, offset_minutes)
);

-- What an organizer sends to the holders of an event's tickets.
CREATE TABLE organizer_messages (
    id           uuid PRIMARY KEY,
    event_id     uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    author_id    uuid NOT NULL REFERENCES users (id),
    subject      text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 200),
    body         text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 20000),
    send_at      timestamptz NOT NULL,
    run_id       uuid NOT NULL UNIQUE REFERENCES workflow_runs (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz
);
CREATE INDEX organizer_messages_event_idx ON organizer_messages (event_id, created_at DESC);

-- A message's progress counts its notifications.
CREATE INDEX notifications_message_idx ON notifications ((context->>'message_id'))
    WHERE kind = 'organizer_message';

-- The fan-out takes bookings (reminders) and holders (messages) of one event
-- in id order.
CREATE INDEX IF NOT EXISTS bookings_event_id_idx ON bookings (event_id, id);
CREATE INDEX IF NOT EXISTS bookings_event_user_idx ON bookings (event_id, user_id);

-- Cleanup deletes old step history and signals of finished runs, and old
-- webhook ids: by run and by age.
CREATE INDEX IF NOT EXISTS workflow_runs_finished_idx ON workflow_runs (finished_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_signals_received_idx ON workflow_signals (received_at);
CREATE INDEX IF NOT EXISTS notifications_sent_idx ON notifications (sent_at) WHERE status = 'sent';
