-- Organizer analytics: counters kept by triggers in the very transactions that
-- write the ledger (bookings, tickets, refunds, checkout runs), so the figures
-- are exact at commit and an event's analytics read a few hundred rows at most,
-- whatever its size (ops/DECISIONS.md, "Analytics").

-- Where a moment falls: the 15-minute UTC slot that holds it. Every time zone
-- offset in use is a multiple of 15 minutes, so an hour or a day in any zone is
-- an exact sum of slots.
CREATE FUNCTION analytics_slot(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_bin('15 minutes', at, timestamptz '2000-01-01 00:00:00+00')
$$;

-- Sales of an event per slot, at the booking's creation.
CREATE TABLE analytics_sales_slots (
    event_id       uuid NOT NULL,
    currency       text NOT NULL,
    slot_start     timestamptz NOT NULL,
    orders         bigint NOT NULL DEFAULT 0,
    tickets        bigint NOT NULL DEFAULT 0,
    -- list price of the order, the coupon's discount, and what was paid (the difference)
    subtotal_minor bigint NOT NULL DEFAULT 0,
    discount_minor bigint NOT NULL DEFAULT 0,
    paid_minor     bigint NOT NULL DEFAULT 0,
    -- Spread over 16 rows by booking id (analytics_shard): every sale of the
    -- event in the slot counts itself here, and one row would make the sales
    -- wait on each other's commits. Readers sum the shards.
    shard          smallint NOT NULL,
    PRIMARY KEY (event_id, slot_start, currency, shard)
);

-- Refunds that succeeded and the money they gave back, per slot of their
-- success. Apart from the sales: a refund's transaction never takes a sales
-- row, so it cannot wait on a sale in a cycle.
CREATE TABLE analytics_refund_slots (
    event_id       uuid NOT NULL,
    currency       text NOT NULL,
    slot_start     timestamptz NOT NULL,
    refunds        bigint NOT NULL DEFAULT 0,
    refunded_minor bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, slot_start, currency)
);

-- Refunds that succeeded, by who asked for them.
CREATE TABLE analytics_refunds (
    event_id       uuid NOT NULL,
    requested_by   text NOT NULL,
    currency       text NOT NULL,
    refunds        bigint NOT NULL DEFAULT 0,
    refunded_minor bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, requested_by, currency)
);

-- Tickets per ticket type: issued (ever), what they paid, checked in, voided.
-- On the ticket type's own row, which every sale and refund completion locks
-- anyway: the counters add no lock of their own to those transactions.
ALTER TABLE ticket_types
    ADD COLUMN tickets_issued bigint NOT NULL DEFAULT 0,
    ADD COLUMN tickets_paid_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN tickets_checked_in bigint NOT NULL DEFAULT 0,
    ADD COLUMN tickets_voided bigint NOT NULL DEFAULT 0;

-- Orders that used a coupon, and the discount they got.
CREATE TABLE analytics_coupons (
    coupon_id      uuid PRIMARY KEY,
    event_id       uuid NOT NULL,
    uses           bigint NOT NULL DEFAULT 0,
    discount_minor bigint NOT NULL DEFAULT 0
);
CREATE INDEX analytics_coupons_event_idx ON analytics_coupons (event_id);

-- Checkout runs of an event by where they stand (analytics_checkout_outcome).
-- Each (event, outcome) is spread over 16 rows by the run's id: every
-- checkout of an event counts itself at its start and at its end, and one row
-- would make all of them wait on each other's commits. Readers sum the shards.
CREATE TABLE analytics_checkouts (
    event_id uuid NOT NULL,
    outcome  text NOT NULL,
    shard    smallint NOT NULL,
    runs     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, outcome, shard)
);

-- The counter shard of a run or booking: the low bits of its id's last
-- (random) byte.
CREATE FUNCTION analytics_shard(id uuid) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (get_byte(uuid_send(id), 15) & 15)::smallint
$$;

-- The funnel's one classification of a checkout run, first match wins:
-- completed; in_progress (not finished); sold_out (the hold was refused);
-- payment_declined (ended unpaid after at least one declined card);
-- expired_unpaid (ended unpaid at its deadline, no decline); cancelled (by the
-- buyer or an operator); other (coupon refused, provider down, event cancelled, ...).
CREATE FUNCTION analytics_checkout_outcome(status text, state jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN status = 'completed' THEN 'completed'
        WHEN status IN ('running', 'waiting', 'compensating') THEN 'in_progress'
        WHEN state -> 'error' ->> 'code' = 'sold_out' THEN 'sold_out'
        WHEN jsonb_typeof(state -> 'payment' -> 'last_error') = 'object' THEN 'payment_declined'
        WHEN state -> 'error' ->> 'code' = 'expired' THEN 'expired_unpaid'
        WHEN state -> 'error' ->> 'code' = 'cancelled' THEN 'cancelled'
        ELSE 'other'
    END
$$;

-- Rows are upserted in key order, and each kind of transaction takes its
-- counter rows after the rows it locks anyway (a sale: ticket types, then its
-- run's outcome, then at commit its sales slot and coupon; a refund's success:
-- its refund slot, then ticket types), so no two transactions wait on each
-- other in a cycle. Hot counters are spread over 16 shards (analytics_shard).

-- A sale is counted at its commit (a deferred trigger): the sales slot and
-- coupon rows are hot (every sale of the event in the slot, every use of the
-- code), and taken at the booking's insert they would stay locked through the
-- rest of the confirming transaction, making concurrent sales wait on it.
CREATE FUNCTION analytics_booking_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_sales_slots AS s
           (event_id, currency, slot_start, shard, orders, subtotal_minor, discount_minor, paid_minor)
    VALUES (NEW.event_id, NEW.currency, analytics_slot(NEW.created_at), analytics_shard(NEW.id), 1,
            NEW.subtotal_minor, NEW.discount_minor, NEW.total_minor)
    ON CONFLICT (event_id, slot_start, currency, shard) DO UPDATE SET
        orders = s.orders + 1,
        subtotal_minor = s.subtotal_minor + EXCLUDED.subtotal_minor,
        discount_minor = s.discount_minor + EXCLUDED.discount_minor,
        paid_minor = s.paid_minor + EXCLUDED.paid_minor;
    IF NEW.coupon_id IS NOT NULL THEN
        INSERT INTO analytics_coupons AS c (coupon_id, event_id, uses, discount_minor)
        VALUES (NEW.coupon_id, NEW.event_id, 1, NEW.discount_minor)
        ON CONFLICT (coupon_id) DO UPDATE SET
            uses = c.uses + 1,
            discount_minor = c.discount_minor + EXCLUDED.discount_minor;
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER analytics_booking_counted AFTER INSERT ON bookings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION analytics_booking_counted();

-- A booking's amounts are written once, when it is confirmed; refunds are
-- counted from `refunds`. Any later change of an amount is refused here, so
-- the counters cannot drift from the rows unnoticed.
CREATE FUNCTION analytics_booking_amounts_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.subtotal_minor <> OLD.subtotal_minor OR NEW.discount_minor <> OLD.discount_minor
       OR NEW.total_minor <> OLD.total_minor OR NEW.event_id <> OLD.event_id
       OR NEW.coupon_id IS DISTINCT FROM OLD.coupon_id OR NEW.created_at <> OLD.created_at
       OR NEW.currency <> OLD.currency THEN
        RAISE EXCEPTION 'a booking''s amounts, coupon, event and time are written once'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_amounts_fixed';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER analytics_booking_amounts_fixed BEFORE UPDATE ON bookings
    FOR EACH ROW EXECUTE FUNCTION analytics_booking_amounts_fixed();

CREATE FUNCTION analytics_tickets_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticket_types t SET
        tickets_issued = t.tickets_issued + d.issued,
        tickets_paid_minor = t.tickets_paid_minor + d.paid_minor,
        tickets_checked_in = t.tickets_checked_in + d.checked_in,
        tickets_voided = t.tickets_voided + d.voided
      FROM (SELECT ticket_type_id, count(*) AS issued, sum(paid_minor)::bigint AS paid_minor,
                   count(checked_in_at) AS checked_in, count(*) FILTER (WHERE status = 'void') AS voided
              FROM new_rows GROUP BY 1) d
     WHERE t.id = d.ticket_type_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_tickets_inserted AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics_tickets_inserted();

-- A ticket joins its sale's slot at commit, as the sale does (same shard).
CREATE FUNCTION analytics_ticket_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_sales_slots AS s (event_id, currency, slot_start, shard, tickets)
    SELECT b.event_id, b.currency, analytics_slot(b.created_at), analytics_shard(b.id), 1
      FROM bookings b WHERE b.id = NEW.booking_id
    ON CONFLICT (event_id, slot_start, currency, shard) DO UPDATE SET tickets = s.tickets + 1;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER analytics_ticket_counted AFTER INSERT ON tickets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION analytics_ticket_counted();

CREATE FUNCTION analytics_tickets_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticket_types t SET
        tickets_paid_minor = t.tickets_paid_minor + d.paid_minor,
        tickets_checked_in = t.tickets_checked_in + d.checked_in,
        tickets_voided = t.tickets_voided + d.voided
      FROM (SELECT n.ticket_type_id, sum(n.paid_minor - o.paid_minor)::bigint AS paid_minor,
                   count(n.checked_in_at) - count(o.checked_in_at) AS checked_in,
                   count(*) FILTER (WHERE n.status = 'void') - count(*) FILTER (WHERE o.status = 'void') AS voided
              FROM new_rows n JOIN old_rows o ON o.id = n.id
             WHERE n.paid_minor <> o.paid_minor
                OR (n.status = 'void') <> (o.status = 'void')
                OR (n.checked_in_at IS NULL) <> (o.checked_in_at IS NULL)
             GROUP BY 1) d
     WHERE t.id = d.ticket_type_id;
    IF EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                WHERE n.ticket_type_id <> o.ticket_type_id) THEN
        RAISE EXCEPTION 'a ticket keeps its ticket type'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_type_fixed';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_tickets_updated AFTER UPDATE ON tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_tickets_updated();

-- A refund counts once, when it succeeds (a success is final).
CREATE FUNCTION analytics_count_refunds(succeeded_runs uuid[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO analytics_refund_slots AS s (event_id, currency, slot_start, refunds, refunded_minor)
    SELECT b.event_id, r.currency, analytics_slot(coalesce(r.completed_at, r.created_at)),
           count(*), sum(r.amount_minor)::bigint
      FROM refunds r JOIN bookings b ON b.id = r.booking_id
     WHERE r.run_id = ANY (succeeded_runs)
     GROUP BY 1, 2, 3 ORDER BY 1, 3, 2
    ON CONFLICT (event_id, slot_start, currency) DO UPDATE SET
        refunds = s.refunds + EXCLUDED.refunds,
        refunded_minor = s.refunded_minor + EXCLUDED.refunded_minor;
    INSERT INTO analytics_refunds AS a (event_id, requested_by, currency, refunds, refunded_minor)
    SELECT b.event_id, r.requested_by, r.currency, count(*), sum(r.amount_minor)::bigint
      FROM refunds r JOIN bookings b ON b.id = r.booking_id
     WHERE r.run_id = ANY (succeeded_runs)
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (event_id, requested_by, currency) DO UPDATE SET
        refunds = a.refunds + EXCLUDED.refunds,
        refunded_minor = a.refunded_minor + EXCLUDED.refunded_minor;
$$;

CREATE FUNCTION analytics_refunds_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_count_refunds(ARRAY(SELECT run_id FROM new_rows WHERE status = 'succeeded'));
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_refunds_inserted AFTER INSERT ON refunds
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION analytics_refunds_inserted();

CREATE FUNCTION analytics_refunds_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.run_id = n.run_id
                WHERE o.status = 'succeeded'
                  AND (n.status <> 'succeeded' OR n.amount_minor <> o.amount_minor
                       OR n.booking_id <> o.booking_id OR n.completed_at IS DISTINCT FROM o.completed_at)) THEN
        RAISE EXCEPTION 'a refund that succeeded is final'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_success_final';
    END IF;
    PERFORM analytics_count_refunds(ARRAY(
        SELECT n.run_id FROM new_rows n JOIN old_rows o ON o.run_id = n.run_id
         WHERE n.status = 'succeeded' AND o.status <> 'succeeded'));
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_refunds_updated AFTER UPDATE ON refunds
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_refunds_updated();

-- Row triggers whose WHEN clauses Postgres evaluates without calling a
-- function: only a checkout's start, and an update that can change its
-- outcome (its status, or the state of a finished run), reach the counters.
CREATE FUNCTION analytics_checkouts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state ? 'event_id' THEN
        INSERT INTO analytics_checkouts AS a (event_id, outcome, shard, runs)
        VALUES ((NEW.state ->> 'event_id')::uuid, analytics_checkout_outcome(NEW.status, NEW.state),
                analytics_shard(NEW.id), 1)
        ON CONFLICT (event_id, outcome, shard) DO UPDATE SET runs = a.runs + 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_checkouts_inserted AFTER INSERT ON workflow_runs
    FOR EACH ROW WHEN (NEW.kind = 'checkout') EXECUTE FUNCTION analytics_checkouts_inserted();

CREATE FUNCTION analytics_checkouts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_event uuid := (OLD.state ->> 'event_id')::uuid;
    now_event uuid := (NEW.state ->> 'event_id')::uuid;
    was text := analytics_checkout_outcome(OLD.status, OLD.state);
    now_is text := analytics_checkout_outcome(NEW.status, NEW.state);
    run_shard smallint := analytics_shard(NEW.id);
BEGIN
    IF was = now_is AND was_event IS NOT DISTINCT FROM now_event THEN
        RETURN NULL;
    END IF;
    -- Both rows of the move are taken in key order (one shard, by outcome),
    -- so two runs' moves never wait on each other in a cycle.
    INSERT INTO analytics_checkouts AS a (event_id, outcome, shard, runs)
    SELECT event_id, outcome, run_shard, delta FROM (
        SELECT was_event AS event_id, was AS outcome, -1::bigint AS delta WHERE was_event IS NOT NULL
        UNION ALL
        SELECT now_event, now_is, 1::bigint WHERE now_event IS NOT NULL
    ) moves
     ORDER BY event_id, outcome
    ON CONFLICT (event_id, outcome, shard) DO UPDATE SET runs = a.runs + EXCLUDED.runs;
    RETURN NULL;
END
$$;
CREATE TRIGGER analytics_checkouts_updated AFTER UPDATE ON workflow_runs
    FOR EACH ROW
    WHEN (NEW.kind = 'checkout'
          AND (OLD.status IS DISTINCT FROM NEW.status
               OR (NEW.status NOT IN ('running', 'waiting', 'compensating')
                   AND OLD.state IS DISTINCT FROM NEW.state)))
    EXECUTE FUNCTION analytics_checkouts_updated();

-- What was there before the counters: counted once, here.
INSERT INTO analytics_sales_slots (event_id, currency, slot_start, shard, orders, subtotal_minor, discount_minor, paid_minor)
SELECT event_id, currency, analytics_slot(created_at), analytics_shard(id), count(*),
       sum(subtotal_minor)::bigint, sum(discount_minor)::bigint, sum(total_minor)::bigint
  FROM bookings GROUP BY 1, 2, 3, 4;
INSERT INTO analytics_sales_slots AS s (event_id, currency, slot_start, shard, tickets)
SELECT b.event_id, b.currency, analytics_slot(b.created_at), analytics_shard(b.id), count(*)
  FROM tickets t JOIN bookings b ON b.id = t.booking_id GROUP BY 1, 2, 3, 4
ON CONFLICT (event_id, slot_start, currency, shard) DO UPDATE SET tickets = EXCLUDED.tickets;
INSERT INTO analytics_coupons (coupon_id, event_id, uses, discount_minor)
SELECT coupon_id, event_id, count(*), sum(discount_minor)::bigint
  FROM bookings WHERE coupon_id IS NOT NULL GROUP BY 1, 2;
UPDATE ticket_types t SET
    tickets_issued = d.issued, tickets_paid_minor = d.paid_minor,
    tickets_checked_in = d.checked_in, tickets_voided = d.voided
  FROM (SELECT ticket_type_id, count(*) AS issued, sum(paid_minor)::bigint AS paid_minor,
               count(checked_in_at) AS checked_in, count(*) FILTER (WHERE status = 'void') AS voided
          FROM tickets GROUP BY 1) d
 WHERE t.id = d.ticket_type_id;
SELECT analytics_count_refunds(ARRAY(SELECT run_id FROM refunds WHERE status = 'succeeded'));
INSERT INTO analytics_checkouts (event_id, outcome, shard, runs)
SELECT (state ->> 'event_id')::uuid, analytics_checkout_outcome(status, state), analytics_shard(id), count(*)
  FROM workflow_runs WHERE kind = 'checkout' AND state ? 'event_id' GROUP BY 1, 2, 3;

-- The exports page through an event's tickets and orders in id order.
CREATE INDEX tickets_event_id_idx ON tickets (event_id, id);
-- (bookings_event_id_idx, on bookings (event_id, id), comes with the reminders.)
