ALTER TABLE waitlist_entries DROP CONSTRAINT waitlist_entries_offer_run_check;
ALTER TABLE waitlist_entries ADD CHECK ((status = 'waiting') = (offer_run_id IS NULL));
