DROP TABLE refunds;
DROP INDEX tickets_refund_run_idx;
ALTER TABLE tickets DROP COLUMN refunded_at;
ALTER TABLE tickets DROP COLUMN refund_run_id;
ALTER TABLE tickets DROP COLUMN paid_minor;
ALTER TABLE bookings DROP CONSTRAINT bookings_refunded_within_total;
ALTER TABLE bookings DROP COLUMN refunded_minor;
ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('confirmed', 'refund_pending', 'refunded', 'cancelled'));
