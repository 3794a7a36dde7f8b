-- When a notification was last queued or tried. The sweep re-queues a pending
-- notification untouched for longer than the stalled threshold with no outbox
-- message waiting: its `send_email` job was lost (e.g. Redis restarted empty).
ALTER TABLE notifications ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
UPDATE notifications SET updated_at = created_at;
DROP INDEX notifications_pending_idx;
CREATE INDEX notifications_pending_idx ON notifications (updated_at) WHERE status = 'pending';
