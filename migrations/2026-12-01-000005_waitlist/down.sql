DROP TABLE waitlist_entries;
DROP INDEX ticket_types_waitlisted_idx;
ALTER TABLE ticket_types DROP COLUMN waiting_units;
ALTER TABLE events DROP COLUMN waitlist_offer_minutes;
ALTER TABLE events DROP COLUMN waitlist_enabled;
