-- What a checkout creates: holds on capacity, the booking, its tickets, the
-- coupon use it reserved, and the emails it queued.

-- Every unit of `ticket_types.held` has an active hold row, so
-- held = sum(active holds) is checkable at any moment.
CREATE TABLE holds (
    id             uuid PRIMARY KEY,
    run_id         uuid NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    ticket_type_id uuid NOT NULL REFERENCES ticket_types (id),
    quantity       integer NOT NULL CHECK (quantity > 0),
    expires_at     timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'converted', 'released')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    closed_at      timestamptz,
    CHECK ((status = 'active') = (closed_at IS NULL)),
    UNIQUE (run_id, ticket_type_id)
);
CREATE INDEX holds_active_ticket_type_idx ON holds (ticket_type_id) WHERE status = 'active';
CREATE INDEX holds_active_expiry_idx ON holds (expires_at) WHERE status = 'active';

-- One use of a coupon reserved by a run; given back exactly once on compensation.
CREATE TABLE coupon_reservations (
    run_id      uuid PRIMARY KEY REFERENCES workflow_runs (id) ON DELETE CASCADE,
    coupon_id   uuid NOT NULL REFERENCES coupons (id),
    status      text NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'redeemed', 'released')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz
);

CREATE TABLE bookings (
    id                uuid PRIMARY KEY,
    run_id            uuid NOT NULL UNIQUE REFERENCES workflow_runs (id),
    user_id           uuid NOT NULL REFERENCES users (id),
    event_id          uuid NOT NULL REFERENCES events (id),
    status            text NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed', 'refund_pending', 'refunded', 'cancelled')),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    subtotal_minor    bigint NOT NULL CHECK (subtotal_minor >= 0),
    discount_minor    bigint NOT NULL DEFAULT 0 CHECK (discount_minor >= 0 AND discount_minor <= subtotal_minor),
    total_minor       bigint NOT NULL CHECK (total_minor = subtotal_minor - discount_minor),
    coupon_id         uuid REFERENCES coupons (id),
    payment_intent_id text UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_user_idx ON bookings (user_id, created_at DESC);
CREATE INDEX bookings_event_idx ON bookings (event_id);

CREATE TABLE tickets (
    id             uuid PRIMARY KEY,
    booking_id     uuid NOT NULL REFERENCES bookings (id),
    event_id       uuid NOT NULL REFERENCES events (id),
    ticket_type_id uuid NOT NULL REFERENCES ticket_types (id),
    -- Unguessable, printed on the ticket; the QR payload signs it.
    number         text NOT NULL UNIQUE,
    status         text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'refund_pending', 'void')),
    qr_payload     text NOT NULL,
    checked_in_at  timestamptz,
    checked_in_by  uuid REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tickets_booking_idx ON tickets (booking_id);
CREATE INDEX tickets_event_idx ON tickets (event_id);

-- Outgoing email, written in the transaction that decides to send it. The dedupe
-- key (e.g. "booking:<id>:confirmation") makes a second decision a no-op, so a
-- retried step never sends twice.
CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    dedupe_key  text NOT NULL UNIQUE,
    kind        text NOT NULL,
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body_text   text NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX notifications_pending_idx ON notifications (created_at) WHERE status = 'pending';
