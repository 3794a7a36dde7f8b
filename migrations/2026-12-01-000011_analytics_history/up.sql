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
