-- A confirmation no longer takes its ticket type's row. Until now each one
-- moved `held` to `sold` and counted its tickets on that row at commit, and a
-- row lock is let go only once the commit is on disk, so a type's
-- confirmations followed each other one WAL flush at a time (README, "What the
-- confirmations' commits wait for").
--
-- A conversion leaves `sold + held` as it is, so the capacity guarantee does
-- not need the row for it. The row now keeps `taken` (= sold + held), which
-- only what changes the free units moves: a hold, a release, a direct sale, a
-- refund. `sold` and the tickets' counters are counted on `ticket_type_sales`,
-- spread over 16 rows per type by the writing backend, and `held` is `taken`
-- less what was sold. The view `ticket_types` shows the type as before, so
-- readers see the same columns; writers of the free units use
-- `ticket_type_rows`.

ALTER TABLE ticket_types RENAME TO ticket_type_rows;

ALTER TABLE ticket_type_rows ADD COLUMN taken integer NOT NULL DEFAULT 0;
UPDATE ticket_type_rows SET taken = sold + held;
ALTER TABLE ticket_type_rows DROP CONSTRAINT ticket_types_capacity_check;
ALTER TABLE ticket_type_rows ADD CONSTRAINT ticket_types_capacity_check
    CHECK (taken >= 0 AND taken <= capacity);

-- What a type sold and the tickets it issued, paid, checked in and voided, in
-- parts: readers sum a type's rows. Each transaction counts on the row of its
-- own backend (`ticket_type_counted`), so all its counts land on one row per
-- type, and two transactions at once land on different rows unless their
-- backends' ids fall on the same one of 16.
CREATE TABLE ticket_type_sales (
    ticket_type_id     uuid NOT NULL REFERENCES ticket_type_rows (id) ON DELETE CASCADE,
    shard              smallint NOT NULL,
    sold               integer NOT NULL DEFAULT 0,
    tickets_issued     bigint NOT NULL DEFAULT 0,
    tickets_paid_minor bigint NOT NULL DEFAULT 0,
    tickets_checked_in bigint NOT NULL DEFAULT 0,
    tickets_voided     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (ticket_type_id, shard)
);

INSERT INTO ticket_type_sales
       (ticket_type_id, shard, sold, tickets_issued, tickets_paid_minor, tickets_checked_in, tickets_voided)
SELECT id, 0, sold, tickets_issued, tickets_paid_minor, tickets_checked_in, tickets_voided
  FROM ticket_type_rows
 WHERE sold <> 0 OR tickets_issued <> 0;

ALTER TABLE ticket_type_rows
    DROP COLUMN sold,
    DROP COLUMN held,
    DROP COLUMN tickets_issued,
    DROP COLUMN tickets_paid_minor,
    DROP COLUMN tickets_checked_in,
    DROP COLUMN tickets_voided;

-- Adds to a type's counts on this backend's row: units sold ($2, negative for
-- a refund), tickets issued ($3), paid ($4), checked in ($5), voided ($6).
-- PL/pgSQL keeps the upsert's plan for the session (a SQL function would plan
-- it again at every call, twice per confirmation).
CREATE FUNCTION ticket_type_counted(uuid, integer, integer, bigint, integer, integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_type_sales AS s
           (ticket_type_id, shard, sold, tickets_issued, tickets_paid_minor,
            tickets_checked_in, tickets_voided)
    VALUES ($1, (pg_backend_pid() % 16)::smallint, $2, $3, $4, $5, $6)
    ON CONFLICT (ticket_type_id, shard) DO UPDATE SET
        sold = s.sold + EXCLUDED.sold,
        tickets_issued = s.tickets_issued + EXCLUDED.tickets_issued,
        tickets_paid_minor = s.tickets_paid_minor + EXCLUDED.tickets_paid_minor,
        tickets_checked_in = s.tickets_checked_in + EXCLUDED.tickets_checked_in,
        tickets_voided = s.tickets_voided + EXCLUDED.tickets_voided;
END
$$;

-- A ticket type with its counts, as the table was. Inserts, updates and
-- deletes of the row's own columns pass through to `ticket_type_rows`.
CREATE VIEW ticket_types AS
SELECT r.id, r.event_id, r.name, r.description, r.price_minor, r.currency, r.capacity,
       (SELECT coalesce(sum(s.sold), 0)::integer
          FROM ticket_type_sales s WHERE s.ticket_type_id = r.id) AS sold,
       r.taken - (SELECT coalesce(sum(s.sold), 0)::integer
                    FROM ticket_type_sales s WHERE s.ticket_type_id = r.id) AS held,
       r.max_per_order, r.sales_start_at, r.sales_end_at, r.sort_order,
       r.created_at, r.updated_at, r.version, r.waiting_units,
       (SELECT coalesce(sum(s.tickets_issued), 0)::bigint
          FROM ticket_type_sales s WHERE s.ticket_type_id = r.id) AS tickets_issued,
       (SELECT coalesce(sum(s.tickets_paid_minor), 0)::bigint
          FROM ticket_type_sales s WHERE s.ticket_type_id = r.id) AS tickets_paid_minor,
       (SELECT coalesce(sum(s.tickets_checked_in), 0)::bigint
          FROM ticket_type_sales s WHERE s.ticket_type_id = r.id) AS tickets_checked_in,
       (SELECT coalesce(sum(s.tickets_voided), 0)::bigint
          FROM ticket_type_sales s WHERE s.ticket_type_id = r.id) AS tickets_voided,
       r.taken
  FROM ticket_type_rows r;

-- Closing a hold: a sale (`converted`) is counted sold, on this backend's row
-- of the type's sales; `taken` stays, so the type's row is not touched. A
-- release gives its units back to the row.
CREATE OR REPLACE FUNCTION holds_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'converted' THEN
        PERFORM ticket_type_counted(NEW.ticket_type_id, NEW.quantity, 0, 0, 0, 0);
    ELSE
        UPDATE ticket_type_rows SET taken = taken - NEW.quantity WHERE id = NEW.ticket_type_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_ticket_issued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ticket_type_counted(NEW.ticket_type_id, 0, 1, NEW.paid_minor,
                                (NEW.checked_in_at IS NOT NULL)::int, (NEW.status = 'void')::int);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_ticket_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ticket_type_counted(
        NEW.ticket_type_id, 0, 0, NEW.paid_minor - OLD.paid_minor,
        (NEW.checked_in_at IS NOT NULL)::int - (OLD.checked_in_at IS NOT NULL)::int,
        (NEW.status = 'void')::int - (OLD.status = 'void')::int);
    RETURN NULL;
END
$$;
