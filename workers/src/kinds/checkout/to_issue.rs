//! The tickets a confirmed booking issues, and what each was paid.

use boxoffice_models::tickets::ToIssue;
use boxoffice_workflows::checkout::BookingDraft;
use diesel::QueryResult;
use uuid::Uuid;

/// The tickets a booking issues, in order (each line's quantity of its type),
/// each with what it cost: its held price less its share of the discount. A
/// quantity below 1 is a bug upstream and fails the confirmation rather than
/// issuing fewer tickets than were sold.
pub(super) fn tickets_to_issue(draft: &BookingDraft) -> QueryResult<Vec<ToIssue>> {
    if let Some(item) = draft.items.iter().find(|i| i.quantity < 1) {
        return Err(diesel::result::Error::QueryBuilderError(
            format!(
                "ticket type {}: quantity {} is not positive",
                item.ticket_type_id, item.quantity
            )
            .into(),
        ));
    }
    let types: Vec<Uuid> = draft
        .items
        .iter()
        .flat_map(|i| std::iter::repeat_n(i.ticket_type_id, i.quantity as usize))
        .collect();
    let prices: Vec<i64> = types
        .iter()
        .map(|ticket_type_id| {
            draft
                .lines
                .iter()
                .find(|l| l.ticket_type_id == *ticket_type_id)
                .map_or(0, |l| l.unit_price_minor)
        })
        .collect();
    let paid = boxoffice_workflows::money::spread_discount(&prices, draft.discount_minor);
    Ok(types
        .into_iter()
        .zip(paid)
        .map(|(ticket_type_id, paid_minor)| ToIssue {
            ticket_type_id,
            paid_minor,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use boxoffice_workflows::checkout::{Item, PricedItem};

    use super::*;

    fn draft(items: &[(Uuid, i32, i64)], discount_minor: i64) -> BookingDraft {
        BookingDraft {
            user_id: Uuid::nil(),
            event_id: Uuid::nil(),
            items: items
                .iter()
                .map(|&(ticket_type_id, quantity, _)| Item {
                    ticket_type_id,
                    quantity,
                })
                .collect(),
            currency: "EUR".into(),
            subtotal_minor: items.iter().map(|&(_, q, p)| i64::from(q) * p).sum(),
            discount_minor,
            coupon_id: None,
            payment_intent_id: None,
            lines: items
                .iter()
                .map(|&(ticket_type_id, quantity, unit_price_minor)| PricedItem {
                    ticket_type_id,
                    quantity,
                    unit_price_minor,
                })
                .collect(),
        }
    }

    #[test]
    fn each_ticket_is_paid_its_price_less_its_share_of_the_discount_in_line_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let issued = tickets_to_issue(&draft(&[(a, 2, 3000), (b, 1, 1000)], 700)).unwrap();
        let types: Vec<Uuid> = issued.iter().map(|t| t.ticket_type_id).collect();
        assert_eq!(types, [a, a, b]);
        let paid: Vec<i64> = issued.iter().map(|t| t.paid_minor).collect();
        // 700 in proportion to 3000, 3000, 1000 (rounded down), the last
        // ticket taking the remainder.
        assert_eq!(paid, [2700, 2700, 900]);
        assert_eq!(paid.iter().sum::<i64>(), 7000 - 700);
    }

    #[test]
    fn a_quantity_below_one_fails_rather_than_issuing_fewer_tickets() {
        let a = Uuid::from_u128(1);
        assert!(tickets_to_issue(&draft(&[(a, 0, 3000)], 0)).is_err());
        assert!(tickets_to_issue(&draft(&[(a, 1, 3000), (a, -1, 3000)], 0)).is_err());
    }
}
