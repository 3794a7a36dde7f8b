-- A slot's sales are counted over 16 shard rows while the slot is live, so
-- concurrent sales do not wait on each other (000010_analytics). Every row of
-- that table is rewritten by each sale of its slot, so the table is sparse:
-- after a month of sales an event's few thousand live rows lie scattered over
-- thousands of pages. Once a slot is past, the hourly cleanup moves it into
-- this table, one row per slot with its shards summed. Rows here are written
-- once (a late sale's slot is added to, rarely), so an event's history is
-- dense, and the live table keeps only the last hour or so of every event.
CREATE TABLE analytics_sales_history (
    event_id       uuid NOT NULL,
    currency       text NOT NULL,
    slot_start     timestamptz NOT NULL,
    orders         bigint NOT NULL DEFAULT 0,
    tickets        bigint NOT NULL DEFAULT 0,
    subtotal_minor bigint NOT NULL DEFAULT 0,
    discount_minor bigint NOT NULL DEFAULT 0,
    paid_minor     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, slot_start, currency)
);

-- Finds the live slots to move (slot_start never changes, so counting a sale
-- stays a HOT update).
CREATE INDEX analytics_sales_slots_slot_start_idx ON analytics_sales_slots (slot_start);

-- A checkout's funnel outcome is counted at its transaction's commit, not at
-- the statement that moves it: Postgres runs deferred triggers inside its own
-- handling of COMMIT, so the counter row is locked only for the commit, never
-- while the client that wrote the run goes on (or stalls: a worker paused in
-- the middle of a step made every new checkout of its shard wait for the
-- lock, and fail on `lock_timeout`). Same functions, same conditions.
DROP TRIGGER analytics_checkouts_inserted ON workflow_runs;
DROP TRIGGER analytics_checkouts_updated ON workflow_runs;
CREATE CONSTRAINT TRIGGER analytics_checkouts_inserted AFTER INSERT ON workflow_runs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.kind = 'checkout') EXECUTE FUNCTION analytics_checkouts_inserted();
CREATE CONSTRAINT TRIGGER analytics_checkouts_updated AFTER UPDATE ON workflow_runs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.kind = 'checkout'
          AND (OLD.status IS DISTINCT FROM NEW.status
               OR (NEW.status NOT IN ('running', 'waiting', 'compensating')
                   AND OLD.state IS DISTINCT FROM NEW.state)))
    EXECUTE FUNCTION analytics_checkouts_updated();
