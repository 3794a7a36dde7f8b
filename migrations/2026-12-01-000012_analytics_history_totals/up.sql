-- An event's sales moved into the history, summed per currency. The money
-- totals read this one row and the live slots of the last hour instead of
-- every slot of the event's history: a month of sales is some 3,000 history
-- rows per event, all summed by every analytics read before this table. The
-- cleanup's move writes it in the same statement that moves the slots
-- (analytics_history::move_past), so a reader sees a moved slot in exactly
-- one of the live table and this total. The time series still reads the
-- history slot by slot.
CREATE TABLE analytics_sales_history_totals (
    event_id       uuid NOT NULL,
    currency       text NOT NULL,
    orders         bigint NOT NULL DEFAULT 0,
    tickets        bigint NOT NULL DEFAULT 0,
    subtotal_minor bigint NOT NULL DEFAULT 0,
    discount_minor bigint NOT NULL DEFAULT 0,
    paid_minor     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, currency)
);

INSERT INTO analytics_sales_history_totals
       (event_id, currency, orders, tickets, subtotal_minor, discount_minor, paid_minor)
SELECT event_id, currency, sum(orders), sum(tickets), sum(subtotal_minor),
       sum(discount_minor), sum(paid_minor)
  FROM analytics_sales_history
 GROUP BY event_id, currency;
