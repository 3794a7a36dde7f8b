DROP TRIGGER holds_closed ON holds;
DROP FUNCTION holds_closed();
DROP TRIGGER analytics_ticket_issued ON tickets;
DROP TRIGGER analytics_ticket_changed ON tickets;
DROP TRIGGER tickets_type_fixed ON tickets;
DROP FUNCTION analytics_ticket_issued();
DROP FUNCTION analytics_ticket_changed();
DROP FUNCTION tickets_type_fixed();

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
