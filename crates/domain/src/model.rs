//! Entities and the plans a use case hands to a port: users, products, order forms, payments,
//! and the payment event for the data platform.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use thiserror::Error;

use crate::values::{
    AmountError, Count, EventId, OrderId, PaymentId, Points, Price, ProductId, ProductName, Stock,
    UserId,
};

/// A registered user and their point balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub balance: Points,
}

/// A catalog entry. `available` is the stock that can be ordered now: reserved units excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub name: ProductName,
    pub price: Price,
    pub available: Stock,
}

/// What an admin supplies to add a product; the store assigns the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: ProductName,
    pub price: Price,
    pub quantity: Stock,
}

/// An admin's change to a product. `restock` adds units to the available stock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductEdit {
    pub name: Option<ProductName>,
    pub price: Option<Price>,
    pub restock: Option<Count>,
}

/// One page of the catalog, by id ascending, and how many products there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogPage {
    pub products: Vec<Product>,
    pub total: u64,
}

/// Why a list of `(product, count)` items is not a valid order or pay request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OrderItemsError {
    #[error("an order needs at least one item")]
    Empty,
    #[error("an order has at most {max} distinct products", max = OrderItems::MAX_LINES)]
    TooManyLines,
    #[error("the counts for one product add up past the limit")]
    Amount(#[from] AmountError),
    #[error("one order takes at most {max} units of a product", max = OrderItems::MAX_UNITS_PER_LINE)]
    TooManyUnits,
}

/// A normalised order or pay request: one entry per product (lines naming the same product are
/// summed), ordered by product id ascending — the order in which stores lock rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItems(BTreeMap<ProductId, Count>);

impl OrderItems {
    /// The most distinct products one order may name.
    pub const MAX_LINES: usize = 100;
    /// The most units of one product one order may take (a sanity bound, OWASP API4).
    pub const MAX_UNITS_PER_LINE: i64 = 1_000_000;

    /// # Errors
    /// [`OrderItemsError::Empty`] for no items, [`OrderItemsError::TooManyLines`] past
    /// [`Self::MAX_LINES`] distinct products, [`OrderItemsError::Amount`] when one product's
    /// counts add up past `i64::MAX`.
    pub fn new(
        items: impl IntoIterator<Item = (ProductId, Count)>,
    ) -> Result<Self, OrderItemsError> {
        let mut lines = BTreeMap::new();
        for (product, count) in items {
            match lines.get_mut(&product) {
                Some(sum) => *sum = Count::checked_add(*sum, count)?,
                None => {
                    lines.insert(product, count);
                }
            }
            if lines.len() > Self::MAX_LINES {
                return Err(OrderItemsError::TooManyLines);
            }
        }
        if lines.is_empty() {
            return Err(OrderItemsError::Empty);
        }
        if lines.values().any(|count| count.get() > Self::MAX_UNITS_PER_LINE) {
            return Err(OrderItemsError::TooManyUnits);
        }
        Ok(Self(lines))
    }

    pub fn iter(&self) -> impl Iterator<Item = (ProductId, Count)> + '_ {
        self.0.iter().map(|(id, count)| (*id, *count))
    }

    pub fn product_ids(&self) -> Vec<ProductId> {
        self.0.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `lines` names exactly these products with exactly these counts.
    pub fn matches(&self, lines: &[OrderLine]) -> bool {
        lines.len() == self.0.len()
            && lines.iter().all(|line| self.0.get(&line.product_id) == Some(&line.count))
    }
}

/// One line of an order form: the unit price is fixed when the order is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub count: Count,
    pub price: Price,
}

/// Where an order form is in its life. Only `Pending` forms hold a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Paid,
    Expired,
    Replaced,
}

/// An order form: reserved stock waiting for payment until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user_id: UserId,
    /// By product id ascending, one line per product.
    pub lines: Vec<OrderLine>,
    pub total: Points,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: OrderStatus,
}

impl Order {
    /// A form can be paid while it is pending and `now` is strictly before `expires_at`; at
    /// the expiry instant itself it is expired.
    pub fn is_payable_at(&self, now: DateTime<Utc>) -> bool {
        self.status == OrderStatus::Pending && now < self.expires_at
    }
}

/// An order as the shop asks a store to place it: what the user wants, not yet priced. The
/// store decides it with [`crate::rules::place_order`] over the product rows it locks in the
/// step that reserves the stock, so the price and the stock are one moment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub id: OrderId,
    pub user_id: UserId,
    pub items: OrderItems,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A completed payment for one order form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: Points,
    pub paid_at: DateTime<Utc>,
    pub lines: Vec<OrderLine>,
}

/// The `payment.completed` event for the data platform (SPEC §3). Written in the same
/// transaction as its payment; `event_id` never changes, so the receiver can drop duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCompleted {
    pub event_id: EventId,
    pub occurred_at: DateTime<Utc>,
    pub payment: Payment,
}

/// An event claimed from the outbox, with the number of attempts that failed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub event: PaymentCompleted,
    pub attempts: u32,
}

/// A row claimed from the outbox that the store could not read back as an event (a value that
/// no longer parses, a missing payment). It is reported, not sent, so the rows claimed with it
/// are not held up; the relay records it as a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEvent {
    pub event_id: EventId,
    pub attempts: u32,
    pub error: String,
}

/// What one claim returned, in claim order: events to send, and rows that could not be read.
pub type ClaimedEvent = Result<OutboxEntry, UnreadableEvent>;

/// One failed delivery attempt, as recorded in the outbox: the event, the error and when to try
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub event_id: EventId,
    pub retry_at: DateTime<Utc>,
    pub error: String,
}

/// The outbox's undelivered events, for health details and logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxBacklog {
    /// Events not yet delivered.
    pub undelivered: u64,
    /// Of those, events whose delivery has failed at least once.
    pub failing: u64,
    /// When the oldest undelivered event happened.
    pub oldest: Option<DateTime<Utc>>,
    /// The last error of the oldest event that has failed.
    pub last_error: Option<String>,
}

/// What a store applies atomically when a form is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPlan {
    pub payment: Payment,
    pub event: PaymentCompleted,
}

/// The result of a payment: the record and the balance left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    pub payment: Payment,
    pub balance: Points,
}

/// One entry of the best-seller list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedProduct {
    pub product: Product,
    pub sold: i64,
}

/// The start of the hour `t` falls in: sales are counted in hourly buckets so the ranking sums
/// at most `24 × days` buckets however many payments there were.
pub fn sales_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// The first hourly bucket inside a ranking window of `days` ending at `now`. The bucket that
/// straddles the window's start is included whole, so the window is `days` plus up to one hour.
pub fn ranking_window_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    sales_hour(now - TimeDelta::days(i64::from(days)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{count, pid};

    #[test]
    fn items_sum_duplicates_and_sort_by_product() {
        let items = OrderItems::new([(pid(3), count(1)), (pid(1), count(2)), (pid(3), count(4))])
            .expect("valid items");
        let lines: Vec<_> = items.iter().map(|(p, c)| (p.get(), c.get())).collect();
        assert_eq!(lines, vec![(1, 2), (3, 5)]);
    }

    #[test]
    fn items_reject_empty_too_many_and_overflowing_lists() {
        assert_eq!(OrderItems::new([]), Err(OrderItemsError::Empty));
        let many = (1..=101).map(|i| (pid(i), count(1)));
        assert_eq!(OrderItems::new(many), Err(OrderItemsError::TooManyLines));
        let too_many = [(pid(1), count(OrderItems::MAX_UNITS_PER_LINE)), (pid(1), count(1))];
        assert_eq!(OrderItems::new(too_many), Err(OrderItemsError::TooManyUnits));
        let overflow = [(pid(1), count(i64::MAX)), (pid(1), count(1))];
        assert_eq!(OrderItems::new(overflow), Err(OrderItemsError::Amount(AmountError::Overflow)));
    }

    #[test]
    fn items_match_lines_in_any_order_and_nothing_else() {
        let price = Price::new(10).expect("valid price");
        let line = |p, c| OrderLine { product_id: pid(p), count: count(c), price };
        let items = OrderItems::new([(pid(2), count(1)), (pid(1), count(2))]).expect("valid");
        assert!(items.matches(&[line(1, 2), line(2, 1)]));
        assert!(!items.matches(&[line(1, 2)]));
        assert!(!items.matches(&[line(1, 2), line(2, 2)]));
        assert!(!items.matches(&[line(1, 2), line(2, 1), line(3, 1)]));
    }

    #[test]
    fn a_form_is_expired_at_its_expiry_instant() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
        let order = Order {
            id: OrderId::new("o"),
            user_id: UserId::parse("u").expect("valid id"),
            lines: vec![],
            total: Points::ZERO,
            created_at: t0,
            expires_at: t0 + TimeDelta::seconds(600),
            status: OrderStatus::Pending,
        };
        assert!(order.is_payable_at(t0 + TimeDelta::seconds(599)));
        assert!(!order.is_payable_at(t0 + TimeDelta::seconds(600)));
        let paid = Order { status: OrderStatus::Paid, ..order };
        assert!(!paid.is_payable_at(t0));
    }

    #[test]
    fn sales_are_bucketed_by_hour() {
        let t = DateTime::from_timestamp(1_700_003_599, 0).expect("valid time");
        assert_eq!(sales_hour(t).timestamp(), 1_700_002_800);
        let window = ranking_window_start(t, 3);
        assert_eq!(window.timestamp(), 1_700_002_800 - 3 * 86_400);
    }
}
