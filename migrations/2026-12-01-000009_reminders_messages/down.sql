DROP INDEX IF EXISTS notifications_sent_idx;
DROP INDEX IF EXISTS workflow_signals_received_idx;
DROP INDEX IF EXISTS workflow_runs_finished_idx;
DROP INDEX IF EXISTS bookings_event_user_idx;
DROP INDEX IF EXISTS bookings_event_id_idx;
DROP INDEX IF EXISTS notifications_message_idx;
DROP TABLE IF EXISTS organizer_messages;
DROP TABLE IF EXISTS event_reminders;
