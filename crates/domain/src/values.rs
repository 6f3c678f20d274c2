//! Value types: every one is valid by construction, and all arithmetic on money and counts is
//! checked, so an overflow is an error (SPEC code 2), never a panic or a wrap.

use std::fmt;

use thiserror::Error;

/// A user id failed the SPEC's format: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a user id is 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")]
pub struct InvalidUserId;

/// A product id that is not a positive integer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a product id is a positive integer")]
pub struct InvalidProductId;

/// A product name that is blank or too long.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a product name is 1-{max} characters and not blank", max = ProductName::MAX_CHARS)]
pub struct InvalidProductName;

/// Why an amount, price, count or sum is not acceptable (SPEC code 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AmountError {
    #[error("the value must be at least 1")]
    NotPositive,
    #[error("the value must not be negative")]
    Negative,
    #[error("the result would exceed 9223372036854775807")]
    Overflow,
    #[error("the value must be a whole number that fits in 64 bits")]
    NotWhole,
}

/// Who a user is: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 64;

    /// # Errors
    /// [`InvalidUserId`] when `raw` is empty, longer than 64 bytes, or has a character outside
    /// `[A-Za-z0-9._-]`.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserId> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(allowed) {
            return Err(InvalidUserId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product's id: a positive integer assigned by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductId(i64);

impl ProductId {
    /// # Errors
    /// [`InvalidProductId`] when `raw` is zero or negative.
    pub fn new(raw: i64) -> Result<Self, InvalidProductId> {
        if raw >= 1 {
            Ok(Self(raw))
        } else {
            Err(InvalidProductId)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A product's display name: trimmed, 1–200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_CHARS: usize = 200;

    /// # Errors
    /// [`InvalidProductName`] when the trimmed name is empty, longer than 200 characters, or
    /// contains control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidProductName> {
        let name = raw.trim();
        if name.is_empty()
            || name.chars().count() > Self::MAX_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(InvalidProductName);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A non-negative number of points: a balance, a total, a payment amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Points(i64);

impl Points {
    pub const ZERO: Self = Self(0);

    /// # Errors
    /// [`AmountError::Negative`] below zero.
    pub fn new(raw: i64) -> Result<Self, AmountError> {
        if raw >= 0 {
            Ok(Self(raw))
        } else {
            Err(AmountError::Negative)
        }
    }

    /// An amount that must be at least one point (a charge).
    ///
    /// # Errors
    /// [`AmountError::NotPositive`] at zero or below.
    pub fn positive(raw: i64) -> Result<Self, AmountError> {
        if raw >= 1 {
            Ok(Self(raw))
        } else {
            Err(AmountError::NotPositive)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// # Errors
    /// [`AmountError::Overflow`] past `i64::MAX`.
    pub fn checked_add(self, other: Self) -> Result<Self, AmountError> {
        self.0.checked_add(other.0).map(Self).ok_or(AmountError::Overflow)
    }

    /// `None` when `other` is larger than `self` (the result would be negative).
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        (self.0 >= other.0).then(|| Self(self.0 - other.0))
    }
}

/// A unit price: at least one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(i64);

impl Price {
    /// # Errors
    /// [`AmountError::NotPositive`] at zero or below.
    pub fn new(raw: i64) -> Result<Self, AmountError> {
        if raw >= 1 {
            Ok(Self(raw))
        } else {
            Err(AmountError::NotPositive)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// The cost of `count` units.
    ///
    /// # Errors
    /// [`AmountError::Overflow`] past `i64::MAX`.
    pub fn times(self, count: Count) -> Result<Points, AmountError> {
        self.0.checked_mul(count.0).map(Points).ok_or(AmountError::Overflow)
    }
}

/// A number of units asked for, sold or added: at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Count(i64);

impl Count {
    /// # Errors
    /// [`AmountError::NotPositive`] at zero or below.
    pub fn new(raw: i64) -> Result<Self, AmountError> {
        if raw >= 1 {
            Ok(Self(raw))
        } else {
            Err(AmountError::NotPositive)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// # Errors
    /// [`AmountError::Overflow`] past `i64::MAX`.
    pub fn checked_add(self, other: Self) -> Result<Self, AmountError> {
        self.0.checked_add(other.0).map(Self).ok_or(AmountError::Overflow)
    }
}

/// Units on hand: zero or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stock(i64);

impl Stock {
    pub const ZERO: Self = Self(0);

    /// # Errors
    /// [`AmountError::Negative`] below zero.
    pub fn new(raw: i64) -> Result<Self, AmountError> {
        if raw >= 0 {
            Ok(Self(raw))
        } else {
            Err(AmountError::Negative)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// # Errors
    /// [`AmountError::Overflow`] past `i64::MAX`.
    pub fn checked_add(self, count: Count) -> Result<Self, AmountError> {
        self.0.checked_add(count.0).map(Self).ok_or(AmountError::Overflow)
    }

    /// `None` when fewer than `count` units are on hand.
    pub fn checked_take(self, count: Count) -> Option<Self> {
        (self.0 >= count.0).then(|| Self(self.0 - count.0))
    }
}

macro_rules! generated_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id produced by the [`IdGenerator`](crate::ports::IdGenerator) port or
            /// read back from a store.
            pub fn new(raw: impl Into<String>) -> Self {
                Self(raw.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

generated_id!(
    /// An order form's id.
    OrderId
);
generated_id!(
    /// A payment's id.
    PaymentId
);
generated_id!(
    /// The stable id of one data-platform event, for the receiver's de-duplication.
    EventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_accepts_the_spec_alphabet_and_lengths() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("A.b_c-9").is_ok());
        assert!(UserId::parse(&"x".repeat(64)).is_ok());
        assert_eq!(UserId::parse(""), Err(InvalidUserId));
        assert_eq!(UserId::parse(&"x".repeat(65)), Err(InvalidUserId));
        assert_eq!(UserId::parse("a b"), Err(InvalidUserId));
        assert_eq!(UserId::parse("a/b"), Err(InvalidUserId));
        assert_eq!(UserId::parse("é"), Err(InvalidUserId));
    }

    #[test]
    fn product_id_is_positive() {
        assert_eq!(ProductId::new(1).map(ProductId::get), Ok(1));
        assert_eq!(ProductId::new(0), Err(InvalidProductId));
        assert_eq!(ProductId::new(-5), Err(InvalidProductId));
    }

    #[test]
    fn product_name_is_trimmed_and_bounded() {
        assert_eq!(ProductName::parse("  Tea ").map(|n| n.as_str().to_owned()), Ok("Tea".into()));
        assert_eq!(ProductName::parse("   "), Err(InvalidProductName));
        assert_eq!(ProductName::parse("a\nb"), Err(InvalidProductName));
        assert!(ProductName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(ProductName::parse(&"é".repeat(201)), Err(InvalidProductName));
    }

    #[test]
    fn amounts_reject_non_positive_values() {
        assert_eq!(Points::positive(0), Err(AmountError::NotPositive));
        assert_eq!(Points::new(-1), Err(AmountError::Negative));
        assert_eq!(Price::new(0), Err(AmountError::NotPositive));
        assert_eq!(Count::new(-3), Err(AmountError::NotPositive));
        assert_eq!(Stock::new(-1), Err(AmountError::Negative));
        assert_eq!(Stock::new(0), Ok(Stock::ZERO));
    }

    #[test]
    fn arithmetic_reports_overflow_instead_of_wrapping() -> Result<(), AmountError> {
        let max = Points::new(i64::MAX)?;
        assert_eq!(max.checked_add(Points::positive(1)?), Err(AmountError::Overflow));
        assert_eq!(Price::new(i64::MAX)?.times(Count::new(2)?), Err(AmountError::Overflow));
        assert_eq!(Price::new(3)?.times(Count::new(4)?), Ok(Points::new(12)?));
        assert_eq!(Count::new(i64::MAX)?.checked_add(Count::new(1)?), Err(AmountError::Overflow));
        assert_eq!(Stock::new(i64::MAX)?.checked_add(Count::new(1)?), Err(AmountError::Overflow));
        Ok(())
    }

    #[test]
    fn subtraction_never_goes_negative() -> Result<(), AmountError> {
        assert_eq!(Points::new(5)?.checked_sub(Points::new(6)?), None);
        assert_eq!(Points::new(5)?.checked_sub(Points::new(5)?), Some(Points::ZERO));
        assert_eq!(Stock::new(2)?.checked_take(Count::new(3)?), None);
        assert_eq!(Stock::new(3)?.checked_take(Count::new(3)?), Some(Stock::ZERO));
        Ok(())
    }
}
