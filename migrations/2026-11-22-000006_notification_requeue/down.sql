DROP INDEX notifications_pending_idx;
ALTER TABLE notifications DROP COLUMN updated_at;
CREATE INDEX notifications_pending_idx ON notifications (created_at) WHERE status = 'pending';
