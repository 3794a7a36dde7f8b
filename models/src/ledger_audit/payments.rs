//! Per payment intent, as the books know them (a booking's
//! `payment_intent_id`, a checkout run's `payment`): charged once, refunded at
//! most what was charged, and every paid booking names the intent it was paid
//! with.

use super::Check;

pub(crate) const CHECKS: &[Check] = &[
    // An intent belongs to one checkout: two runs (or a booking and another
    // run) claiming it would sell one payment twice.
    Check {
        name: "intent_charged_once",
        sql: "WITH claims AS (
                  SELECT b.payment_intent_id AS intent, b.run_id FROM bookings b
                   WHERE b.payment_intent_id IS NOT NULL AND ($1::uuid IS NULL OR b.event_id = $1)
                  UNION
                  SELECT r.state -> 'payment' ->> 'intent_id', r.id FROM workflow_runs r
                   WHERE r.kind = 'checkout' AND r.state -> 'payment' ->> 'intent_id' IS NOT NULL
                     AND ($1::uuid IS NULL OR r.state ->> 'event_id' = $1::text))
              SELECT 'payment_intents' AS table_name, intent AS row_id,
                     'one checkout' AS expected,
                     count(DISTINCT run_id) || ' checkouts: ' || string_agg(DISTINCT run_id::text, ', ') AS found
                FROM claims GROUP BY intent HAVING count(DISTINCT run_id) > 1
               ORDER BY intent",
    },
    // What the refunds of an intent give back, against what it charged: a
    // booking's refunds against its total, and a checkout's refund of a late
    // payment against the payment.
    Check {
        name: "intent_refunded_within_charged",
        sql: "SELECT 'payment_intents' AS table_name, b.payment_intent_id AS row_id,
                     'refunds <= ' || b.total_minor || ' charged (booking ' || b.id || ')' AS expected,
                     'refunds = ' || sum(r.amount_minor) AS found
                FROM bookings b JOIN refunds r ON r.booking_id = b.id
               WHERE b.payment_intent_id IS NOT NULL AND r.status IN ('succeeded', 'pending')
                 AND ($1::uuid IS NULL OR b.event_id = $1)
               GROUP BY b.id, b.payment_intent_id, b.total_minor
              HAVING sum(r.amount_minor) > b.total_minor
              UNION ALL
              SELECT 'payment_intents', r.state -> 'payment' ->> 'intent_id',
                     'refunds <= ' || (r.state -> 'payment' ->> 'amount_minor') || ' charged (run ' || r.id || ')',
                     'refunds = ' || (r.state -> 'late_refund' -> 'amount' ->> 'amount_minor')
                FROM workflow_runs r
               WHERE r.kind = 'checkout' AND r.state -> 'late_refund' IS NOT NULL
                 AND jsonb_typeof(r.state -> 'late_refund') = 'object'
                 AND ($1::uuid IS NULL OR r.state ->> 'event_id' = $1::text)
                 AND (r.state -> 'late_refund' -> 'amount' ->> 'amount_minor')::bigint
                     > (r.state -> 'payment' ->> 'amount_minor')::bigint",
    },
    // A booking that cost money was paid by the intent of its own checkout.
    Check {
        name: "booking_intent",
        sql: "SELECT 'bookings' AS table_name, b.id::text AS row_id,
                     'payment_intent_id = ' || coalesce(r.state -> 'payment' ->> 'intent_id', '(its checkout''s intent)') AS expected,
                     'payment_intent_id = ' || coalesce(b.payment_intent_id, 'none') AS found
                FROM bookings b JOIN workflow_runs r ON r.id = b.run_id
               WHERE ($1::uuid IS NULL OR b.event_id = $1) AND b.total_minor > 0
                 AND (b.payment_intent_id IS NULL
                      OR b.payment_intent_id IS DISTINCT FROM r.state -> 'payment' ->> 'intent_id')
               ORDER BY b.id",
    },
];
