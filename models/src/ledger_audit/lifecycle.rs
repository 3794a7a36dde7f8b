//! Runs, emails and coupons: an ended run holds nothing, a booking was
//! confirmed by exactly one email, a coupon is not used beyond its limit.

use super::Check;

pub(crate) const CHECKS: &[Check] = &[
    // Ended runs (`completed`, `compensated`, `cancelled`) hold nothing. A
    // `failed` run is parked for an operator with what it holds, which the
    // operator's retry or cancel settles, so it is not counted here.
    Check {
        name: "finished_run_hold",
        sql: "SELECT 'holds' AS table_name, h.id::text AS row_id,
                     'closed (run ' || r.id || ' is ' || r.status || ')' AS expected,
                     'active, ' || h.quantity || ' of ticket type ' || h.ticket_type_id AS found
                FROM holds h
                JOIN workflow_runs r ON r.id = h.run_id
                JOIN ticket_types tt ON tt.id = h.ticket_type_id
               WHERE h.status = 'active' AND r.status IN ('completed', 'compensated', 'cancelled')
                 AND ($1::uuid IS NULL OR tt.event_id = $1)
               ORDER BY h.id",
    },
    // Every booking was confirmed, so it has its one confirmation email
    // (the dedupe key is unique, so more than one cannot exist).
    Check {
        name: "booking_confirmation_email",
        sql: "SELECT 'bookings' AS table_name, b.id::text AS row_id,
                     'one notification booking:' || b.id || ':confirmation' AS expected,
                     count(n.id) || ' notifications' AS found
                FROM bookings b
                LEFT JOIN notifications n ON n.dedupe_key = 'booking:' || b.id || ':confirmation'
               WHERE ($1::uuid IS NULL OR b.event_id = $1)
               GROUP BY b.id HAVING count(n.id) <> 1
               ORDER BY b.id",
    },
    // Uses are the counter and the uses reserved or redeemed by runs; either
    // beyond the limit is a coupon used too often.
    Check {
        name: "coupon_max_uses",
        sql: "SELECT 'coupons' AS table_name, c.id::text AS row_id,
                     'at most ' || c.max_uses || ' uses' AS expected,
                     'used = ' || c.used || ', reservations = ' || coalesce(u.n, 0) AS found
                FROM coupons c
                LEFT JOIN (SELECT coupon_id, count(*) AS n FROM coupon_reservations
                            WHERE status IN ('reserved', 'redeemed') GROUP BY coupon_id) u
                       ON u.coupon_id = c.id
               WHERE ($1::uuid IS NULL OR c.event_id = $1) AND c.max_uses IS NOT NULL
                 AND greatest(c.used, coalesce(u.n, 0)) > c.max_uses
               ORDER BY c.id",
    },
];
