-- A ticket type's row is hot: every hold of the type takes its lock, and so
-- does every sale and release. A step that changed the row in the middle of
-- its transaction kept that lock through every later statement and round trip
-- of the step, and every other hold and sale of the type waited for it (in a
-- flash sale, the tickets' insert of a confirmation waited 140 ms on average).
-- Here they change it at commit instead: Postgres runs deferred triggers inside
-- its own handling of COMMIT, so the row is locked only for the commit. The
-- counters are right at every commit, as before. A guarded change that decides
-- (a hold, a direct sale) stays a statement of its own.
--
-- At commit, deferred triggers run in the order their events happened: a
-- sale's holds (the ticket type), then its booking and tickets (its sales
-- slot, the ticket type again), then its run (its funnel outcome); a release's
-- holds, then its run. That is the order in which they took these rows when
-- the ticket type changed at once.

-- Closing a hold moves its units: a sale (`converted`) from held to sold, a
-- release back to the free units.
CREATE FUNCTION holds_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticket_types SET
        held = held - NEW.quantity,
        sold = sold + CASE WHEN NEW.status = 'converted' THEN NEW.quantity ELSE 0 END
     WHERE id = NEW.ticket_type_id;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER holds_closed AFTER UPDATE OF status ON holds
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.status = 'active' AND NEW.status <> 'active')
    EXECUTE FUNCTION holds_closed();

-- The tickets' counters of their type, one ticket at a time at commit (the
-- per-statement triggers they replace ran at the statement).
DROP TRIGGER analytics_tickets_inserted ON tickets;
DROP TRIGGER analytics_tickets_updated ON tickets;

CREATE FUNCTION analytics_ticket_issued() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE CONSTRAINT TRIGGER analytics_ticket_issued AFTER INSERT ON tickets
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION analytics_ticket_issued();

CREATE FUNCTION analytics_ticket_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE CONSTRAINT TRIGGER analytics_ticket_changed AFTER UPDATE ON tickets
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.paid_minor <> OLD.paid_minor
          OR (NEW.status = 'void') <> (OLD.status = 'void')
          OR (NEW.checked_in_at IS NULL) <> (OLD.checked_in_at IS NULL))
    EXECUTE FUNCTION analytics_ticket_changed();

-- The check the per-statement trigger made, at the statement.
CREATE FUNCTION tickets_type_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a ticket keeps its ticket type'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_type_fixed';
END
$$;
CREATE TRIGGER tickets_type_fixed BEFORE UPDATE OF ticket_type_id ON tickets
    FOR EACH ROW WHEN (NEW.ticket_type_id <> OLD.ticket_type_id)
    EXECUTE FUNCTION tickets_type_fixed();

DROP FUNCTION analytics_tickets_inserted();
DROP FUNCTION analytics_tickets_updated();
