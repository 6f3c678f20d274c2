//! Rows as diesel reads and writes them, and their conversion to and from domain types. A row
//! that fails a value type's validation is a corrupt database, reported as `Unexpected`.

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{Queryable, QueryableByName, Selectable};
use domain::model::{Order, OrderLine, OrderStatus, Product};
use domain::values::{Count, OrderId, Points, Price, ProductId, ProductName, Stock, UserId};

use crate::schema::{order_forms, order_lines, products};

pub(crate) fn to_db(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

pub(crate) fn from_db(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

pub(crate) const PENDING: &str = "pending";
pub(crate) const PAID: &str = "paid";
pub(crate) const EXPIRED: &str = "expired";
pub(crate) const REPLACED: &str = "replaced";

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = products)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
pub(crate) struct ProductRow {
    pub id: i64,
    pub name: String,
    pub price: i64,
    pub available: i64,
}

impl ProductRow {
    pub(crate) fn into_product(self) -> anyhow::Result<Product> {
        let context = || format!("corrupt product row {}", self.id);
        Ok(Product {
            id: ProductId::new(self.id).with_context(context)?,
            name: ProductName::parse(&self.name).with_context(context)?,
            price: Price::new(self.price).with_context(context)?,
            available: Stock::new(self.available).with_context(context)?,
        })
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = order_forms)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
pub(crate) struct FormRow {
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub total: i64,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// A new form's columns, written by a batch as SQL text.
#[derive(Debug)]
pub(crate) struct NewForm<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub pending_user: Option<&'a str>,
    pub status: &'a str,
    pub total: i64,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub closed_at: Option<NaiveDateTime>,
}

impl<'a> NewForm<'a> {
    pub(crate) fn pending(order: &'a Order) -> Self {
        Self {
            id: order.id.as_str(),
            user_id: order.user_id.as_str(),
            pending_user: Some(order.user_id.as_str()),
            status: PENDING,
            total: order.total.get(),
            created_at: to_db(order.created_at),
            expires_at: to_db(order.expires_at),
            closed_at: None,
        }
    }

    /// A form replaced by a later order of the same batch before it was ever stored pending.
    pub(crate) fn replaced(order: &'a Order, at: NaiveDateTime) -> Self {
        Self { pending_user: None, status: REPLACED, closed_at: Some(at), ..Self::pending(order) }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = order_lines)]
#[diesel(check_for_backend(diesel::mysql::Mysql))]
pub(crate) struct LineRow {
    pub order_id: String,
    pub product_id: i64,
    pub count: i64,
    pub price: i64,
}

impl LineRow {
    pub(crate) fn to_line(&self) -> anyhow::Result<OrderLine> {
        let context = || format!("corrupt line of order {}", self.order_id);
        Ok(OrderLine {
            product_id: ProductId::new(self.product_id).with_context(context)?,
            count: Count::new(self.count).with_context(context)?,
            price: Price::new(self.price).with_context(context)?,
        })
    }
}

pub(crate) fn status(raw: &str) -> anyhow::Result<OrderStatus> {
    match raw {
        PENDING => Ok(OrderStatus::Pending),
        PAID => Ok(OrderStatus::Paid),
        EXPIRED => Ok(OrderStatus::Expired),
        REPLACED => Ok(OrderStatus::Replaced),
        other => anyhow::bail!("unknown order status {other:?}"),
    }
}

impl FormRow {
    pub(crate) fn into_order(self, lines: &[LineRow]) -> anyhow::Result<Order> {
        let context = || format!("corrupt order form {}", self.id);
        Ok(Order {
            user_id: UserId::parse(&self.user_id).with_context(context)?,
            lines: lines.iter().map(LineRow::to_line).collect::<anyhow::Result<_>>()?,
            total: Points::new(self.total).with_context(context)?,
            created_at: from_db(self.created_at),
            expires_at: from_db(self.expires_at),
            status: status(&self.status)?,
            id: OrderId::new(self.id),
        })
    }
}
