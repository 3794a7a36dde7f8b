//! Per booking: what was paid is what its tickets cost, what was given back is
//! what its refunds add up to, and a refunded ticket is void.

use super::Check;

pub(crate) const CHECKS: &[Check] = &[
    // Each ticket keeps its price less its share of the discount, so the
    // tickets (void ones included) add up to the booking's total.
    Check {
        name: "booking_paid",
        sql: "SELECT 'bookings' AS table_name, b.id::text AS row_id,
                     'its tickets'' paid_minor add up to total_minor ' || b.total_minor AS expected,
                     'they add up to ' || coalesce(t.paid, 0) AS found
                FROM bookings b
                LEFT JOIN (SELECT booking_id, sum(paid_minor) AS paid FROM tickets
                            WHERE ($1::uuid IS NULL OR event_id = $1) GROUP BY booking_id) t
                       ON t.booking_id = b.id
               WHERE ($1::uuid IS NULL OR b.event_id = $1)
                 AND b.total_minor <> coalesce(t.paid, 0)
               ORDER BY b.id",
    },
    // `refunded_minor` is given back or being given back: succeeded and
    // pending refunds (a failed one released its amount).
    Check {
        name: "booking_refunded",
        sql: "SELECT 'bookings' AS table_name, b.id::text AS row_id,
                     'refunded_minor = ' || coalesce(r.amount, 0) || ' (succeeded and pending refunds)' AS expected,
                     'refunded_minor = ' || b.refunded_minor AS found
                FROM bookings b
                LEFT JOIN (SELECT booking_id, sum(amount_minor) AS amount FROM refunds
                            WHERE status IN ('succeeded', 'pending') GROUP BY booking_id) r
                       ON r.booking_id = b.id
               WHERE ($1::uuid IS NULL OR b.event_id = $1)
                 AND b.refunded_minor <> coalesce(r.amount, 0)
               ORDER BY b.id",
    },
    Check {
        name: "refunded_ticket_void",
        sql: "SELECT 'tickets' AS table_name, t.id::text AS row_id,
                     'void (refunded by run ' || coalesce(t.refund_run_id::text, '?') || ')' AS expected,
                     t.status AS found
                FROM tickets t
                LEFT JOIN refunds r ON r.run_id = t.refund_run_id
               WHERE ($1::uuid IS NULL OR t.event_id = $1)
                 AND (t.refunded_at IS NOT NULL OR r.status = 'succeeded')
                 AND t.status <> 'void'
               ORDER BY t.id",
    },
];
