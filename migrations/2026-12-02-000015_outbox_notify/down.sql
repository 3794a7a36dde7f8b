DROP TRIGGER outbox_due_now ON outbox;
DROP FUNCTION outbox_notify();
