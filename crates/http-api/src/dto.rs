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
/// code 1): `1.5`, `1e30` and `9223372036854775808` are [`JsonInt::Unrepresentable`]. A number
/// written with a fraction or an exponent whose value is whole (`2.0`, `1e3`) is that integer,
/// as JSON Schema's `integer` reads it (ADR 0008); it is read as a 64-bit float first, so past
/// 2^53 it is only as exact as the float.
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

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonInt, E> {
                // -2^63 ..= 2^63 - 1, as floats: the upper bound 2^63 itself is out of range.
                let in_range =
                    (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v);
                Ok(if v.fract() == 0.0 && in_range {
                    JsonInt::Exact(v as i64)
                } else {
                    JsonInt::Unrepresentable
                })
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

/// The patterns the description gives the values the handlers accept (set by
/// [`crate::openapi`]). Each is what the parser named beside it accepts: the tests in
/// `openapi.rs` compare the two on generated strings, and the schema-driven fuzzing run in
/// `make test` compares the document with the server.
pub mod rules {
    /// [`domain::values::UserId::parse`].
    pub const USER_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
    /// [`crate::routes`]' path ids: [`super::canonical_decimal`], then `>= 1`.
    pub const PRODUCT_ID_PATTERN: &str = "^[1-9][0-9]*$";
    /// Query numbers: [`super::canonical_decimal`].
    pub const DECIMAL_PATTERN: &str = "^(0|[1-9][0-9]*)$";
    /// [`domain::idempotency::IdempotencyKey::new`]: 1-255 visible ASCII characters.
    pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
    /// [`domain::values::ProductName::parse`]: after trimming white space (Rust's
    /// `char::is_whitespace`), 1-200 characters, none of them a control character (`Cc`).
    /// Written out with explicit classes so that every regex dialect reads it alike.
    pub const PRODUCT_NAME_PATTERN: &str = concat!(
        "^[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*",
        "[^\\x00-\\x20\\x7F-\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]",
        "(?:[^\\x00-\\x1F\\x7F-\\x9F]{0,198}",
        "[^\\x00-\\x20\\x7F-\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000])?",
        "[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$",
    );
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 1-64 characters of `[A-Za-z0-9._-]`.
    #[schema(min_length = 1, max_length = 64)]
    pub id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// Points to add, at least 1; a balance that would pass 2^63-1 is code 2.
    #[schema(value_type = i64, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub amount: JsonInt,
}

/// One line of an order or pay body: `{"product_id": 1, "count": 2}`. Lines naming the same
/// product are summed; an order has at most 100 distinct products and at most 1 000 000 units
/// of one product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(value_type = i64, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub product_id: JsonInt,
    #[schema(value_type = i64, minimum = 1, maximum = 1_000_000)]
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
    /// Trimmed of white space, then 1-200 characters and no control characters.
    pub name: String,
    #[schema(value_type = i64, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub price: JsonInt,
    /// The units on the shelf, 0 or more.
    #[schema(value_type = i64, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub quantity: JsonInt,
}

/// At least one field; a field is left out, never `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditProductRequest {
    /// Trimmed of white space, then 1-200 characters and no control characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, nullable = false)]
    pub name: Option<String>,
    /// The new price, for later orders.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i64, nullable = false, minimum = 1,
             maximum = 9_223_372_036_854_775_807_i64)]
    pub price: Option<JsonInt>,
    /// Units to add to the available stock; the units on the shelf may not pass 2^63-1.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i64, nullable = false, minimum = 1,
             maximum = 9_223_372_036_854_775_807_i64)]
    pub restock: Option<JsonInt>,
}

/// An optional field that, when given, must hold a value: `null` is a malformed body (code 1),
/// as the description says (the fields are not nullable).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
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

/// The largest number a query string may carry: numbers in the API are signed 64-bit.
pub const QUERY_MAX: u64 = i64::MAX as u64;

/// A query-string number, written as [`canonical_decimal`] requires, from 0 to
/// [`QUERY_MAX`] (the API's numbers are signed 64-bit; a larger offset is an error, not an
/// empty page).
fn query_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    canonical_decimal(&raw).filter(|n| *n <= QUERY_MAX).map(Some).ok_or_else(|| {
        de::Error::custom(format!(
            "{raw:?} is not a whole number from 0 to {QUERY_MAX} written with digits only"
        ))
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Products to skip (default 0); digits only, no leading zero.
    #[serde(default, deserialize_with = "query_decimal")]
    #[param(value_type = i64, minimum = 0, maximum = 9_223_372_036_854_775_807_i64,
            pattern = "^(0|[1-9][0-9]*)$")]
    pub offset: Option<u64>,
    /// Products per page (default 20; above 100 is 100); digits only, no leading zero.
    #[serde(default, deserialize_with = "query_decimal")]
    #[param(value_type = i64, minimum = 1, maximum = 9_223_372_036_854_775_807_i64,
            pattern = "^(0|[1-9][0-9]*)$")]
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
        let unrepresentable =
            ["9223372036854775808", "1.5", "1e30", "-99999999999999999999", "9.3e18", "1e-3"];
        for number in unrepresentable {
            assert_eq!(parse(number).ok(), Some(JsonInt::Unrepresentable), "{number}");
        }
        let whole = [
            ("2.0", 2),
            ("1e3", 1000),
            ("-4.0", -4),
            ("0.0", 0),
            ("2251799813685247.0", (1 << 51) - 1),
            ("4611686018427387904.0", 1 << 62),
        ];
        for (number, value) in whole {
            assert_eq!(parse(number).ok(), Some(JsonInt::Exact(value)), "{number}");
        }
        assert_eq!(parse("-9223372036854775808.0").ok(), Some(JsonInt::Exact(i64::MIN)));
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
