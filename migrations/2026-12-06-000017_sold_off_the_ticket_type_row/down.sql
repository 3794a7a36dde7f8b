DROP VIEW ticket_types;

ALTER TABLE ticket_type_rows
    ADD COLUMN sold integer NOT NULL DEFAULT 0,
    ADD COLUMN held integer NOT NULL DEFAULT 0,
    ADD COLUMN tickets_issued bigint NOT NULL DEFAULT 0,
    ADD COLUMN tickets_paid_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN tickets_checked_in bigint NOT NULL DEFAULT 0,
    ADD COLUMN tickets_voided bigint NOT NULL DEFAULT 0;

UPDATE ticket_type_rows r SET
    sold = c.sold,
    tickets_issued = c.tickets_issued,
    tickets_paid_minor = c.tickets_paid_minor,
    tickets_checked_in = c.tickets_checked_in,
    tickets_voided = c.tickets_voided
  FROM (SELECT ticket_type_id, sum(sold)::integer AS sold,
               sum(tickets_issued)::bigint AS tickets_issued,
               sum(tickets_paid_minor)::bigint AS tickets_paid_minor,
               sum(tickets_checked_in)::bigint AS tickets_checked_in,
               sum(tickets_voided)::bigint AS tickets_voided
          FROM ticket_type_sales GROUP BY 1) c
 WHERE c.ticket_type_id = r.id;
UPDATE ticket_type_rows SET held = taken - sold;

ALTER TABLE ticket_type_rows DROP CONSTRAINT ticket_types_capacity_check;
ALTER TABLE ticket_type_rows ADD CONSTRAINT ticket_types_capacity_check
    CHECK (sold >= 0 AND held >= 0 AND sold + held <= capacity);
ALTER TABLE ticket_type_rows DROP COLUMN taken;
ALTER TABLE ticket_type_rows RENAME TO ticket_types;

CREATE OR REPLACE FUNCTION holds_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticket_types SET
        held = held - NEW.quantity,
        sold = sold + CASE WHEN NEW.status = 'converted' THEN NEW.quantity ELSE 0 END
     WHERE id = NEW.ticket_type_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_ticket_issued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticket_types SET
        tickets_issued = tickets_issued + 1,
        tickets_paid_minor = tickets_paid_minor + NEW.paid_minor,
        tickets_checked_in = tickets_checked_in + (NEW.checked_in_at IS NOT NULL)::int,
        tickets_voided = tickets_voided + (NEW.status = 'void')::int
     WHERE id = NEW.ticket_type_id;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_ticket_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticket_types SET
        tickets_paid_minor = tickets_paid_minor + NEW.paid_minor - OLD.paid_minor,
        tickets_checked_in = tickets_checked_in
            + (NEW.checked_in_at IS NOT NULL)::int - (OLD.checked_in_at IS NOT NULL)::int,
        tickets_voided = tickets_voided + (NEW.status = 'void')::int - (OLD.status = 'void')::int
     WHERE id = NEW.ticket_type_id;
    RETURN NULL;
END
$$;

DROP FUNCTION ticket_type_counted(uuid, integer, integer, bigint, integer, integer);
DROP TABLE ticket_type_sales;
