-- The API keeps in memory the terms of an event's sale that every checkout
-- start is checked against (the event's status, dates and limits; its ticket
-- types' windows and limits), and must hear at once when an organizer's edit
-- or a cancellation changes them. Each trigger sends the event's id on
-- `boxoffice_catalog` when the transaction commits.
--
-- Only the columns the API keeps are named: a sale updates `held` and `sold`
-- on every hold, and those updates must not announce anything (nor drop the
-- terms a flood of checkouts is served from).

CREATE FUNCTION notify_sale_terms_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'events' THEN
        PERFORM pg_notify('boxoffice_catalog', OLD.id::text);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('boxoffice_catalog', NEW.event_id::text);
    ELSE
        PERFORM pg_notify('boxoffice_catalog', OLD.event_id::text);
        IF TG_OP = 'UPDATE' THEN
            IF NEW.event_id <> OLD.event_id THEN
                PERFORM pg_notify('boxoffice_catalog', NEW.event_id::text);
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_sale_terms_changed
    AFTER UPDATE OF status, ends_at, sales_start_at, sales_end_at, hold_minutes,
        max_tickets_per_order, max_tickets_per_participant
    OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION notify_sale_terms_changed();

-- A new ticket type, or a removed one, changes the event's terms too.
CREATE TRIGGER ticket_types_sale_terms_changed
    AFTER INSERT OR DELETE
    OR UPDATE OF event_id, name, sales_start_at, sales_end_at, max_per_order
    ON ticket_types
    FOR EACH ROW EXECUTE FUNCTION notify_sale_terms_changed();
