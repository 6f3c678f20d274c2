//! Values the domain's own tests build from literals (compiled only for them).

use chrono::{DateTime, Utc};

use crate::values::{Count, Points, ProductId, UserId};

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
