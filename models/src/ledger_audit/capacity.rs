//! Per ticket type: the counters on `ticket_types` agree with the rows they
//! count, and what is sold or held fits in the capacity.

use super::Check;

pub(crate) const CHECKS: &[Check] = &[
    // A ticket counts as sold until its refund voids it (a ticket being
    // refunded still occupies its seat).
    Check {
        name: "ticket_type_sold",
        sql: "SELECT 'ticket_types' AS table_name, tt.id::text AS row_id,
                     'sold = ' || coalesce(t.n, 0) || ' tickets not void' AS expected,
                     'sold = ' || tt.sold AS found
                FROM ticket_types tt
                LEFT JOIN (SELECT ticket_type_id, count(*) AS n FROM tickets
                            WHERE status <> 'void' AND ($1::uuid IS NULL OR event_id = $1)
                            GROUP BY ticket_type_id) t ON t.ticket_type_id = tt.id
               WHERE ($1::uuid IS NULL OR tt.event_id = $1) AND tt.sold <> coalesce(t.n, 0)
               ORDER BY tt.id",
    },
    // Waitlist offers hold their units through an active hold of their run,
    // so this sum covers checkouts and offers alike.
    Check {
        name: "ticket_type_held",
        sql: "SELECT 'ticket_types' AS table_name, tt.id::text AS row_id,
                     'held = ' || coalesce(h.n, 0) || ' (active holds)' AS expected,
                     'held = ' || tt.held AS found
                FROM ticket_types tt
                LEFT JOIN (SELECT ticket_type_id, sum(quantity) AS n FROM holds
                            WHERE status = 'active' GROUP BY ticket_type_id) h
                       ON h.ticket_type_id = tt.id
               WHERE ($1::uuid IS NULL OR tt.event_id = $1) AND tt.held <> coalesce(h.n, 0)
               ORDER BY tt.id",
    },
    Check {
        name: "ticket_type_capacity",
        sql: "SELECT 'ticket_types' AS table_name, tt.id::text AS row_id,
                     'sold + held <= capacity ' || tt.capacity AS expected,
                     'sold + held = ' || (tt.sold + tt.held) AS found
                FROM ticket_types tt
               WHERE ($1::uuid IS NULL OR tt.event_id = $1) AND tt.sold + tt.held > tt.capacity
               ORDER BY tt.id",
    },
    Check {
        name: "ticket_type_waiting",
        sql: "SELECT 'ticket_types' AS table_name, tt.id::text AS row_id,
                     'waiting_units = ' || coalesce(w.n, 0) || ' (waiting entries)' AS expected,
                     'waiting_units = ' || tt.waiting_units AS found
                FROM ticket_types tt
                LEFT JOIN (SELECT ticket_type_id, sum(quantity) AS n FROM waitlist_entries
                            WHERE status = 'waiting' AND ($1::uuid IS NULL OR event_id = $1)
                            GROUP BY ticket_type_id) w ON w.ticket_type_id = tt.id
               WHERE ($1::uuid IS NULL OR tt.event_id = $1)
                 AND tt.waiting_units <> coalesce(w.n, 0)
               ORDER BY tt.id",
    },
];
