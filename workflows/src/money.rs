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

#[cfg(test)]
mod tests {
    use super::*;

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
