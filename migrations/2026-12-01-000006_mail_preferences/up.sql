-- What participants want to receive, when events remind them, and the
-- notifications each participant can read back.

-- Reminders and organizer messages may be turned off; transactional emails
-- (confirmation, refund, offer) are always sent.
ALTER TABLE users ADD COLUMN notify_reminders boolean NOT NULL DEFAULT true;
ALTER TABLE users ADD COLUMN notify_messages boolean NOT NULL DEFAULT true;

-- Minutes before the start at which confirmed bookings are reminded: up to 3.
ALTER TABLE events ADD COLUMN reminder_offsets_minutes integer[] NOT NULL DEFAULT '{1440,60}'
    CHECK (cardinality(reminder_offsets_minutes) <= 3
           AND 0 < ALL (reminder_offsets_minutes)
           AND 40320 >= ALL (reminder_offsets_minutes));

-- Whose notification it is (NULL for mail to an address with no account), and
-- what the renderer needs to build the email at sending time: ids of the
-- event, booking, tickets, message… (`{}` when the text alone is the email).
ALTER TABLE notifications ADD COLUMN user_id uuid REFERENCES users (id);
ALTER TABLE notifications ADD COLUMN context jsonb NOT NULL DEFAULT '{}';
ALTER TABLE notifications ADD COLUMN read_at timestamptz;
CREATE INDEX notifications_user_idx ON notifications (user_id, id DESC) WHERE user_id IS NOT NULL;
