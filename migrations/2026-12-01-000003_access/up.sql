-- Ticket types and coupons get a version, as events have: it moves on every
-- change an organizer makes (never on sales, holds or coupon uses), so an
-- update can be made conditional on the version the organizer last read
-- (If-Match) and two organizers cannot overwrite each other's edits unseen.
ALTER TABLE ticket_types ADD COLUMN version integer NOT NULL DEFAULT 1
    CONSTRAINT ticket_types_version_check CHECK (version >= 1);
ALTER TABLE coupons ADD COLUMN version integer NOT NULL DEFAULT 1
    CONSTRAINT coupons_version_check CHECK (version >= 1);
