-- A slot's sales are counted over 16 shard rows while the slot is live, so
-- concurrent sales do not wait on each other (000010_analytics). Once the slot
-- is past, the cleanup folds its shards into shard 0: an event's analytics then
-- read one row per past slot instead of up to sixteen. This index finds the
-- slots still to fold; it holds only unfolded rows, and slot_start never
-- changes, so counting a sale stays a HOT update.
CREATE INDEX analytics_sales_slots_unfolded_idx
    ON analytics_sales_slots (slot_start) WHERE shard <> 0;
