-- Refunds: what each ticket really cost, what a booking has given back, and
-- one row per refund run.

-- A booking that gave back part of its money is `partially_refunded`.
ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('confirmed', 'partially_refunded', 'refund_pending', 'refunded', 'cancelled'));
-- Given back or being given back (reserved when a refund starts, released if
-- the provider refuses it): never more than was paid, whatever the code does.
ALTER TABLE bookings ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE bookings ADD CONSTRAINT bookings_refunded_within_total
    CHECK (refunded_minor >= 0 AND refunded_minor <= total_minor);

-- What the buyer paid for this ticket: its price less its share of the
-- order's discount (the last ticket takes the rounding remainder).
ALTER TABLE tickets ADD COLUMN paid_minor bigint NOT NULL DEFAULT 0 CHECK (paid_minor >= 0);
-- The refund run that holds (or voided) this ticket.
ALTER TABLE tickets ADD COLUMN refund_run_id uuid REFERENCES workflow_runs (id);
ALTER TABLE tickets ADD COLUMN refunded_at timestamptz;
CREATE INDEX tickets_refund_run_idx ON tickets (refund_run_id) WHERE refund_run_id IS NOT NULL;

CREATE TABLE refunds (
    run_id             uuid PRIMARY KEY REFERENCES workflow_runs (id),
    booking_id         uuid NOT NULL REFERENCES bookings (id),
    amount_minor       bigint NOT NULL CHECK (amount_minor >= 0),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    tickets            integer NOT NULL CHECK (tickets >= 0),
    -- buyer | organizer | admin | event_cancellation
    requested_by       text NOT NULL CHECK (requested_by IN ('buyer', 'organizer', 'admin', 'event_cancellation')),
    -- pending: reserved and under way; succeeded; failed: released (tickets given back)
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_refund_id text,
    reason             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz
);
CREATE INDEX refunds_booking_idx ON refunds (booking_id);
