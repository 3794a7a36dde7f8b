DROP TRIGGER analytics_checkouts_inserted ON workflow_runs;
DROP TRIGGER analytics_checkouts_updated ON workflow_runs;
CREATE TRIGGER analytics_checkouts_inserted AFTER INSERT ON workflow_runs
    FOR EACH ROW WHEN (NEW.kind = 'checkout') EXECUTE FUNCTION analytics_checkouts_inserted();
CREATE TRIGGER analytics_checkouts_updated AFTER UPDATE ON workflow_runs
    FOR EACH ROW
    WHEN (NEW.kind = 'checkout'
          AND (OLD.status IS DISTINCT FROM NEW.status
               OR (NEW.status NOT IN ('running', 'waiting', 'compensating')
                   AND OLD.state IS DISTINCT FROM NEW.state)))
    EXECUTE FUNCTION analytics_checkouts_updated();

-- Gives the history back to the live table as shard 0, then drops it.
INSERT INTO analytics_sales_slots AS s
       (event_id, currency, slot_start, shard, orders, tickets, subtotal_minor, discount_minor, paid_minor)
SELECT event_id, currency, slot_start, 0, orders, tickets, subtotal_minor, discount_minor, paid_minor
  FROM analytics_sales_history
ON CONFLICT (event_id, slot_start, currency, shard) DO UPDATE SET
       orders = s.orders + EXCLUDED.orders,
       tickets = s.tickets + EXCLUDED.tickets,
       subtotal_minor = s.subtotal_minor + EXCLUDED.subtotal_minor,
       discount_minor = s.discount_minor + EXCLUDED.discount_minor,
       paid_minor = s.paid_minor + EXCLUDED.paid_minor;
DROP INDEX analytics_sales_slots_slot_start_idx;
DROP TABLE analytics_sales_history;
