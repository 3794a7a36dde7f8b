//! The books against the payment provider's own records: every payment the
//! provider took belongs to a booking or was given back, each booking's
//! intent was paid for exactly its total, and what the provider refunded is
//! what the books say was refunded. The caller lists the provider's intents
//! and refunds (this crate does no HTTP); the comparison is a pure function.

use std::collections::{HashMap, HashSet};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Violation;

/// An intent as the books know it: the checkout that created it, the booking
/// it paid (if any), what it charged and what the books say came back.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct BookedIntent {
    #[diesel(sql_type = Text)]
    pub intent_id: String,
    #[diesel(sql_type = Text)]
    pub run_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub booking_id: Option<String>,
    /// The booking's total, or the amount the checkout asked for.
    #[diesel(sql_type = BigInt)]
    pub charged_minor: i64,
    /// Refunds that succeeded (a booking's, or a checkout's refund of a late payment).
    #[diesel(sql_type = BigInt)]
    pub refunded_minor: i64,
}

/// A payment intent as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIntent {
    pub id: String,
    pub amount: i64,
    pub status: String,
    /// `metadata[run_id]`: the checkout that created it.
    pub run_id: Option<String>,
}

/// A refund as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub id: String,
    pub payment_intent: String,
    pub amount: i64,
    pub status: String,
}

pub(super) async fn booked_intents(
    conn: &mut AsyncPgConnection,
    event_id: Option<Uuid>,
) -> diesel::QueryResult<Vec<BookedIntent>> {
    diesel::sql_query(
        "SELECT r.state -> 'payment' ->> 'intent_id' AS intent_id, r.id::text AS run_id,
                b.id::text AS booking_id,
                coalesce(b.total_minor, (r.state -> 'payment' ->> 'amount_minor')::bigint) AS charged_minor,
                (coalesce((SELECT sum(f.amount_minor) FROM refunds f
                            WHERE f.booking_id = b.id AND f.status = 'succeeded'), 0)
                 + CASE WHEN r.state -> 'late_refund' ->> 'status' = 'succeeded'
                        THEN (r.state -> 'late_refund' -> 'amount' ->> 'amount_minor')::bigint
                        ELSE 0 END)::bigint AS refunded_minor
           FROM workflow_runs r
           LEFT JOIN bookings b ON b.run_id = r.id
          WHERE r.kind = 'checkout' AND r.state -> 'payment' ->> 'intent_id' IS NOT NULL
            AND ($1::uuid IS NULL OR r.state ->> 'event_id' = $1::text)
          ORDER BY 1",
    )
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(event_id)
    .load(conn)
    .await
}

/// Compares the books with the provider's lists. With `scoped` (an audit of
/// one event) only the provider's intents of that event's checkouts are
/// looked at; otherwise every intent the provider has.
pub fn compare(
    books: &[BookedIntent],
    intents: &[ProviderIntent],
    refunds: &[ProviderRefund],
    scoped: bool,
) -> Vec<Violation> {
    let by_intent: HashMap<&str, &BookedIntent> =
        books.iter().map(|b| (b.intent_id.as_str(), b)).collect();
    let runs: HashSet<&str> = books.iter().map(|b| b.run_id.as_str()).collect();
    let mut refunded: HashMap<&str, i64> = HashMap::new();
    let mut refunding: HashMap<&str, i64> = HashMap::new();
    for refund in refunds {
        match refund.status.as_str() {
            "succeeded" => {
                *refunded.entry(refund.payment_intent.as_str()).or_default() += refund.amount
            }
            "pending" | "requires_action" => {
                *refunding.entry(refund.payment_intent.as_str()).or_default() += refund.amount
            }
            _ => {}
        }
    }
    let violation = |invariant: &str, id: &str, expected: String, found: String| Violation {
        invariant: invariant.to_owned(),
        table: "provider payment_intents".to_owned(),
        row_id: id.to_owned(),
        expected,
        found,
    };
    let mut violations = Vec::new();
    let provider: HashMap<&str, &ProviderIntent> =
        intents.iter().map(|i| (i.id.as_str(), i)).collect();
    for intent in intents {
        let ours = by_intent.get(intent.id.as_str());
        let of_scope = ours.is_some()
            || intent
                .run_id
                .as_deref()
                .is_some_and(|run| runs.contains(run));
        if scoped && !of_scope {
            continue;
        }
        let given_back = refunded.get(intent.id.as_str()).copied().unwrap_or(0)
            + refunding.get(intent.id.as_str()).copied().unwrap_or(0);
        if intent.status == "succeeded"
            && ours.is_none_or(|b| b.booking_id.is_none())
            && given_back < intent.amount
        {
            violations.push(violation(
                "provider_intent_accounted",
                &intent.id,
                "a booking's payment, or refunded in full".to_owned(),
                format!(
                    "succeeded for {} (run {}), no booking, {} refunded",
                    intent.amount,
                    intent.run_id.as_deref().unwrap_or("unknown"),
                    given_back
                ),
            ));
        }
    }
    for booked in books {
        let Some(booking) = booked.booking_id.as_deref() else {
            continue;
        };
        match provider.get(booked.intent_id.as_str()) {
            Some(intent)
                if intent.status == "succeeded" && intent.amount == booked.charged_minor => {}
            Some(intent) => violations.push(violation(
                "provider_booking_paid",
                &booked.intent_id,
                format!("succeeded for {} (booking {booking})", booked.charged_minor),
                format!("{} for {}", intent.status, intent.amount),
            )),
            None => violations.push(violation(
                "provider_booking_paid",
                &booked.intent_id,
                format!("succeeded for {} (booking {booking})", booked.charged_minor),
                "unknown to the provider".to_owned(),
            )),
        }
    }
    for booked in books {
        let at_provider = refunded
            .get(booked.intent_id.as_str())
            .copied()
            .unwrap_or(0);
        if provider.contains_key(booked.intent_id.as_str()) && at_provider != booked.refunded_minor
        {
            violations.push(violation(
                "provider_refunded",
                &booked.intent_id,
                format!("{} refunded (run {})", booked.refunded_minor, booked.run_id),
                format!("{at_provider} refunded at the provider"),
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booked(intent: &str, booking: Option<&str>, charged: i64, refunded: i64) -> BookedIntent {
        BookedIntent {
            intent_id: intent.to_owned(),
            run_id: format!("run-{intent}"),
            booking_id: booking.map(str::to_owned),
            charged_minor: charged,
            refunded_minor: refunded,
        }
    }

    fn intent(id: &str, amount: i64, status: &str) -> ProviderIntent {
        ProviderIntent {
            id: id.to_owned(),
            amount,
            status: status.to_owned(),
            run_id: Some(format!("run-{id}")),
        }
    }

    fn refund(intent: &str, amount: i64, status: &str) -> ProviderRefund {
        ProviderRefund {
            id: format!("re-{intent}-{amount}"),
            payment_intent: intent.to_owned(),
            amount,
            status: status.to_owned(),
        }
    }

    fn names(violations: &[Violation]) -> Vec<(&str, &str)> {
        violations
            .iter()
            .map(|v| (v.invariant.as_str(), v.row_id.as_str()))
            .collect()
    }

    #[test]
    fn matching_books_and_provider_are_clean() {
        let books = [
            booked("pi_a", Some("b1"), 1000, 400),
            booked("pi_late", None, 500, 500),
        ];
        let intents = [
            intent("pi_a", 1000, "succeeded"),
            intent("pi_late", 500, "succeeded"),
            intent("pi_gone", 700, "canceled"),
        ];
        let refunds = [
            refund("pi_a", 400, "succeeded"),
            refund("pi_a", 100, "failed"),
            refund("pi_late", 500, "succeeded"),
        ];
        assert_eq!(compare(&books, &intents, &refunds, false), vec![]);
    }

    #[test]
    fn a_payment_without_booking_or_refund_is_named() {
        let intents = [intent("pi_stray", 900, "succeeded")];
        let found = compare(&[], &intents, &[], false);
        assert_eq!(
            names(&found),
            vec![("provider_intent_accounted", "pi_stray")]
        );
        // Out of an event's scope, it is not that event's business.
        assert_eq!(compare(&[], &intents, &[], true), vec![]);
    }

    #[test]
    fn a_booking_paid_for_another_amount_or_never_is_named() {
        let books = [
            booked("pi_a", Some("b1"), 1000, 0),
            booked("pi_b", Some("b2"), 800, 0),
        ];
        let intents = [
            intent("pi_a", 900, "succeeded"),
            intent("pi_b", 800, "requires_payment_method"),
        ];
        let found = compare(&books, &intents, &[], false);
        assert_eq!(
            names(&found),
            vec![
                ("provider_booking_paid", "pi_a"),
                ("provider_booking_paid", "pi_b")
            ]
        );
    }

    #[test]
    fn refunds_that_differ_from_the_books_are_named() {
        let books = [booked("pi_a", Some("b1"), 1000, 300)];
        let intents = [intent("pi_a", 1000, "succeeded")];
        let refunds = [
            refund("pi_a", 300, "succeeded"),
            refund("pi_a", 200, "succeeded"),
        ];
        let found = compare(&books, &intents, &refunds, false);
        assert_eq!(names(&found), vec![("provider_refunded", "pi_a")]);
        assert_eq!(found[0].found, "500 refunded at the provider");
    }
}
