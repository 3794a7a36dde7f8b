DROP INDEX notifications_user_idx;
ALTER TABLE notifications DROP COLUMN read_at;
ALTER TABLE notifications DROP COLUMN context;
ALTER TABLE notifications DROP COLUMN user_id;
ALTER TABLE events DROP COLUMN reminder_offsets_minutes;
ALTER TABLE users DROP COLUMN notify_messages;
ALTER TABLE users DROP COLUMN notify_reminders;
