DROP TRIGGER ticket_types_sale_terms_changed ON ticket_types;
DROP TRIGGER events_sale_terms_changed ON events;
DROP FUNCTION notify_sale_terms_changed();
