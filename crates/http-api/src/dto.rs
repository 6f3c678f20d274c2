//! Request and response bodies, exactly as SPEC §2 spells them, and their conversion into the
//! domain's value types. Validation itself lives in the value types' constructors.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::model::{Order, OrderItems, Payment, Product, RankedProduct};
use domain::values::{AmountError, Count, InvalidProductId, ProductId};
use domain::HealthReport;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};

/// A JSON number where the API expects a signed 64-bit integer. Any JSON number deserializes,
/// so that "not a whole number in range" can be told apart from "not a number" (a type error,
/// code 1): `1.5`, `1e30` and `9223372036854775808` are [`JsonInt::Unrepresentable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonInt {
    Exact(i64),
    Unrepresentable,
}

impl utoipa::PartialSchema for JsonInt {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        i64::schema()
    }
}

impl ToSchema for JsonInt {}

impl<'de> Deserialize<'de> for JsonInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;

        impl Visitor<'_> for IntVisitor {
            type Value = JsonInt;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonInt, E> {
                Ok(JsonInt::Exact(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonInt, E> {
                Ok(i64::try_from(v).map_or(JsonInt::Unrepresentable, JsonInt::Exact))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<JsonInt, E> {
                Ok(JsonInt::Unrepresentable)
            }
        }

        deserializer.deserialize_any(IntVisitor)
    }
}

impl JsonInt {
    /// An amount, count or price: a number that is not a whole `i64` is code 2.
    pub fn amount(self) -> Result<i64, AmountError> {
        match self {
            Self::Exact(v) => Ok(v),
            Self::Unrepresentable => Err(AmountError::NotWhole),
        }
    }

    /// An id: a number that is not a whole `i64` is a bad id (code 1).
    pub fn product_id(self) -> Result<ProductId, InvalidProductId> {
        match self {
            Self::Exact(v) => ProductId::new(v),
            Self::Unrepresentable => Err(InvalidProductId),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    pub amount: JsonInt,
}

/// One line of an order or pay body: `{"product_id": 1, "count": 2}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub product_id: JsonInt,
    pub count: JsonInt,
}

/// Turns an order or pay body into normalised items, checking each line in order.
pub fn order_items(lines: Vec<ItemRequest>) -> Result<OrderItems, ApiError> {
    let mut items = Vec::with_capacity(lines.len());
    for line in lines {
        let product = line.product_id.product_id()?;
        let count = Count::new(line.count.amount()?)?;
        items.push((product, count));
    }
    Ok(OrderItems::new(items)?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProductRequest {
    pub name: String,
    pub price: JsonInt,
    pub quantity: JsonInt,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditProductRequest {
    pub name: Option<String>,
    pub price: Option<JsonInt>,
    pub restock: Option<JsonInt>,
}

/// `raw` as a whole number written the one way a path or a query string may write it:
/// `^(0|[1-9][0-9]*)$` — digits only (no sign, no spaces), no leading zero unless the number is
/// 0 — as JSON writes numbers, so that a URL has one spelling (`/product/+1` and `/product/01`
/// are not product 1). `None` otherwise, or past `u64::MAX`. (`str::parse` alone takes `+1`
/// and `007`.)
pub fn canonical_decimal(raw: &str) -> Option<u64> {
    let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    let canonical = digits && (raw == "0" || !raw.starts_with('0'));
    canonical.then(|| raw.parse().ok()).flatten()
}

/// A query-string number, written as [`canonical_decimal`] requires.
fn query_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    canonical_decimal(&raw).map(Some).ok_or_else(|| {
        de::Error::custom(format!("{raw:?} is not a whole number written with digits only"))
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Products to skip; digits only, no leading zero.
    #[serde(default, deserialize_with = "query_decimal")]
    #[param(pattern = "^(0|[1-9][0-9]*)$")]
    pub offset: Option<u64>,
    /// Products per page (1 or more; above 100 is 100); digits only, no leading zero.
    #[serde(default, deserialize_with = "query_decimal")]
    #[param(minimum = 1, pattern = "^(0|[1-9][0-9]*)$")]
    pub limit: Option<u64>,
}

/// Every success body starts with `"errorcode": 0`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Success<T: Serialize> {
    pub errorcode: ErrorCode,
    #[serde(flatten)]
    pub body: T,
}

impl<T: Serialize> Success<T> {
    pub fn new(body: T) -> Self {
        Self { errorcode: ErrorCode::Success, body }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AmountBody {
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDto {
    pub id: i64,
    pub name: String,
    pub price: i64,
    /// The available stock: reserved units excluded.
    pub quantity: i64,
}

impl From<Product> for ProductDto {
    fn from(p: Product) -> Self {
        Self {
            id: p.id.get(),
            name: p.name.as_str().to_owned(),
            price: p.price.get(),
            quantity: p.available.get(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductBody {
    pub product: ProductDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogBody {
    pub products: Vec<ProductDto>,
    pub total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RankedDto {
    #[serde(flatten)]
    pub product: ProductDto,
    pub sold: i64,
}

impl From<RankedProduct> for RankedDto {
    fn from(r: RankedProduct) -> Self {
        Self { product: r.product.into(), sold: r.sold }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RankedBody {
    pub products: Vec<RankedDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineDto {
    pub product_id: i64,
    pub count: i64,
    pub price: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDto {
    pub id: String,
    pub total: i64,
    pub expires_at: String,
    pub items: Vec<OrderLineDto>,
}

impl From<Order> for OrderDto {
    fn from(o: Order) -> Self {
        Self {
            id: o.id.to_string(),
            total: o.total.get(),
            expires_at: rfc3339(o.expires_at),
            items: o
                .lines
                .iter()
                .map(|l| OrderLineDto {
                    product_id: l.product_id.get(),
                    count: l.count.get(),
                    price: l.price.get(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderBody {
    pub order: OrderDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDto {
    pub id: String,
    pub order_id: String,
    pub amount: i64,
    pub paid_at: String,
}

impl From<Payment> for PaymentDto {
    fn from(p: Payment) -> Self {
        Self {
            id: p.id.to_string(),
            order_id: p.order_id.to_string(),
            amount: p.amount.get(),
            paid_at: rfc3339(p.paid_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PayBody {
    pub payment: PaymentDto,
    /// The balance after the payment.
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    pub status: &'static str,
    pub outbox: OutboxHealth,
}

/// The payment events still waiting for the data platform.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxHealth {
    pub undelivered: u64,
    /// Of those, how many have failed at least once.
    pub failing: u64,
    /// How long the oldest has waited, in seconds; `null` when none waits.
    pub oldest_age_secs: Option<f64>,
    /// The last error of the oldest failing event, with any URL in it shown as `<url>`.
    pub last_error: Option<String>,
}

/// `text` with every URL (`scheme://…`, up to the next space, less trailing punctuation)
/// replaced by `<url>`: `/health` is public, and the data platform's URL may name an internal
/// host or carry credentials. The log keeps the whole text.
fn without_urls(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let Some(at) = word.find("://") else { return word.to_owned() };
            let scheme_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
            let start = word[..at].rfind(|c: char| !scheme_char(c)).map_or(0, |i| i + 1);
            let end = word
                .trim_end_matches(|c: char| {
                    c.is_whitespace() || matches!(c, ':' | ',' | ';' | '.' | ')' | ']' | '\'' | '"')
                })
                .len()
                .max(at);
            format!("{}<url>{}", &word[..start], &word[end..])
        })
        .collect()
}

impl From<HealthReport> for HealthBody {
    fn from(report: HealthReport) -> Self {
        let oldest_age_secs =
            report.oldest_event_age().map(|age| age.num_milliseconds().max(0) as f64 / 1_000.0);
        Self {
            status: "ok",
            outbox: OutboxHealth {
                undelivered: report.outbox.undelivered,
                failing: report.outbox.failing,
                oldest_age_secs,
                last_error: report.outbox.last_error.as_deref().map(without_urls),
            },
        }
    }
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-24T04:40:01.123Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<JsonInt, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn json_ints_tell_out_of_range_from_wrong_type() {
        assert_eq!(parse("42").ok(), Some(JsonInt::Exact(42)));
        assert_eq!(parse("-7").ok(), Some(JsonInt::Exact(-7)));
        assert_eq!(parse("9223372036854775807").ok(), Some(JsonInt::Exact(i64::MAX)));
        for unrepresentable in ["9223372036854775808", "1.5", "1e30", "-99999999999999999999"] {
            assert_eq!(parse(unrepresentable).ok(), Some(JsonInt::Unrepresentable));
        }
        for wrong_type in ["\"42\"", "null", "true", "[1]"] {
            assert!(parse(wrong_type).is_err(), "{wrong_type}");
        }
    }

    #[test]
    fn order_items_check_ids_then_counts_then_sums() {
        let line = |p, c| ItemRequest { product_id: p, count: c };
        let code = |r: Result<OrderItems, ApiError>| r.err().map(|e| e.code() as u8);
        assert_eq!(code(order_items(vec![line(JsonInt::Exact(0), JsonInt::Exact(0))])), Some(1));
        assert_eq!(code(order_items(vec![line(JsonInt::Exact(1), JsonInt::Exact(0))])), Some(2));
        assert_eq!(
            code(order_items(vec![line(JsonInt::Exact(1), JsonInt::Unrepresentable)])),
            Some(2)
        );
        assert_eq!(code(order_items(vec![])), Some(1));
        let overflow = vec![
            line(JsonInt::Exact(1), JsonInt::Exact(i64::MAX)),
            line(JsonInt::Exact(1), JsonInt::Exact(1)),
        ];
        assert_eq!(code(order_items(overflow)), Some(2));
        let ok = order_items(vec![line(JsonInt::Exact(2), JsonInt::Exact(1))]);
        assert_eq!(ok.map(|i| i.len()).ok(), Some(1));
    }
}
