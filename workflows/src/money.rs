//! Money: an amount in minor units with its currency, never one without the other.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// In the currency's minor unit (cents): every currency Boxoffice sells in has two decimals.
    pub amount_minor: i64,
    /// ISO 4217, upper case (`EUR`).
    pub currency: String,
}

impl Money {
    pub fn new(amount_minor: i64, currency: impl Into<String>) -> Self {
        Money {
            amount_minor,
            currency: currency.into(),
        }
    }

    pub fn zero(currency: impl Into<String>) -> Self {
        Money::new(0, currency)
    }

    pub fn is_zero(&self) -> bool {
        self.amount_minor == 0
    }

    /// The sum, or `None` across currencies or on overflow.
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount_minor.checked_add(other.amount_minor))
            .flatten()
            .map(|amount_minor| Money::new(amount_minor, self.currency.clone()))
    }

    /// The difference, or `None` across currencies or on overflow.
    pub fn checked_sub(&self, other: &Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount_minor.checked_sub(other.amount_minor))
            .flatten()
            .map(|amount_minor| Money::new(amount_minor, self.currency.clone()))
    }
}

impl fmt::Display for Money {
    /// `45.00 EUR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

/// What each of an order's tickets cost the buyer: its price less its share
/// of the order's `discount`, shared in proportion to the prices (rounded
/// down), the last ticket taking the rounding remainder. The amounts add up to
/// exactly `Σ prices − discount`, and none is negative.
pub fn spread_discount(prices: &[i64], discount: i64) -> Vec<i64> {
    let subtotal: i64 = prices.iter().sum();
    let discount = discount.clamp(0, subtotal);
    if prices.is_empty() || subtotal == 0 {
        return prices.to_vec();
    }
    let mut shares: Vec<i64> = prices
        .iter()
        .map(|p| ((i128::from(discount) * i128::from(*p)) / i128::from(subtotal)) as i64)
        .collect();
    let last = shares.len() - 1;
    shares[last] = discount - shares[..last].iter().sum::<i64>();
    // The remainder may not fit the last ticket (a cheap last ticket): move
    // what does not fit to the tickets before it that still have room.
    let mut excess = (shares[last] - prices[last]).max(0);
    shares[last] -= excess;
    for i in (0..last).rev() {
        if excess == 0 {
            break;
        }
        let room = prices[i] - shares[i];
        let take = room.min(excess);
        shares[i] += take;
        excess -= take;
    }
    prices.iter().zip(shares).map(|(p, s)| p - s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discount_is_spread_and_the_last_ticket_takes_the_remainder() {
        assert_eq!(spread_discount(&[4500, 4500], 1000), vec![4000, 4000]);
        assert_eq!(
            spread_discount(&[1000, 1000, 1000], 100),
            vec![967, 967, 966]
        );
        assert_eq!(spread_discount(&[3000, 1000], 4000), vec![0, 0]);
        assert_eq!(spread_discount(&[5000], 0), vec![5000]);
        assert_eq!(spread_discount(&[0, 0], 0), vec![0, 0]);
        // A free last ticket cannot take a remainder: it moves to the others.
        assert_eq!(spread_discount(&[1001, 1001, 0], 1001), vec![501, 500, 0]);
        for (prices, discount) in [
            (vec![333, 777, 1], 500),
            (vec![1, 1, 1, 1], 3),
            (vec![9999, 1], 9999),
        ] {
            let paid = spread_discount(&prices, discount);
            assert_eq!(
                paid.iter().sum::<i64>(),
                prices.iter().sum::<i64>() - discount
            );
            assert!(paid.iter().zip(&prices).all(|(a, p)| *a >= 0 && a <= p));
        }
    }

    #[test]
    fn sums_stay_in_one_currency() {
        let a = Money::new(1050, "EUR");
        assert_eq!(
            a.checked_add(&Money::new(50, "EUR")),
            Some(Money::new(1100, "EUR"))
        );
        assert_eq!(
            a.checked_sub(&Money::new(1100, "EUR")),
            Some(Money::new(-50, "EUR"))
        );
        assert_eq!(a.checked_add(&Money::new(1, "USD")), None);
        assert_eq!(
            Money::new(i64::MAX, "EUR").checked_add(&Money::new(1, "EUR")),
            None
        );
    }

    #[test]
    fn displays_with_two_decimals() {
        assert_eq!(Money::new(4500, "EUR").to_string(), "45.00 EUR");
        assert_eq!(Money::new(-7, "EUR").to_string(), "-0.07 EUR");
        assert!(Money::zero("EUR").is_zero());
    }
}
