//! Values the domain's own tests build from literals (compiled only for them).

use chrono::{DateTime, Utc};

use crate::rules::Shelf;
use crate::values::{Count, Points, Price, ProductId, Stock, UserId};

pub(crate) fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
}

pub(crate) fn user(raw: &str) -> UserId {
    UserId::parse(raw).expect("valid user id")
}

pub(crate) fn pid(raw: i64) -> ProductId {
    ProductId::new(raw).expect("valid product id")
}

pub(crate) fn count(raw: i64) -> Count {
    Count::new(raw).expect("valid count")
}

pub(crate) fn points(raw: i64) -> Points {
    Points::new(raw).expect("valid points")
}

pub(crate) fn stock(raw: i64) -> Stock {
    Stock::new(raw).expect("valid stock")
}

/// A product's row at `price` with `available` units and none reserved.
pub(crate) fn shelf(price: i64, available: i64) -> Shelf {
    Shelf {
        price: Price::new(price).expect("valid price"),
        available: stock(available),
        reserved: Stock::ZERO,
    }
}
