-- A participant may leave the waitlist before any offer: a `left` entry may
-- have no offer run. Every other status keeps its meaning: `waiting` has no
-- offer run; `offered`, `accepted`, `expired` and `declined` have one.
DO $$
DECLARE
    name text;
BEGIN
    SELECT conname INTO name
      FROM pg_constraint
     WHERE conrelid = 'waitlist_entries'::regclass
       AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%offer_run_id IS NULL%'
       AND pg_get_constraintdef(oid) LIKE '%''waiting''%';
    EXECUTE format('ALTER TABLE waitlist_entries DROP CONSTRAINT %I', name);
END $$;

ALTER TABLE waitlist_entries ADD CONSTRAINT waitlist_entries_offer_run_check CHECK (
    CASE status
        WHEN 'waiting' THEN offer_run_id IS NULL
        WHEN 'left' THEN true
        ELSE offer_run_id IS NOT NULL
    END
);
