//! The ranking, the outbox and the health probe.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime};
use domain::model::{Payment, PaymentCompleted, RankedProduct};
use domain::ports::{HealthProbe, Outbox, SalesRanking};
use domain::values::{EventId, OrderId, PaymentId, Points, UserId};

use crate::rows::{from_db, to_db, LineRow, ProductRow};
use crate::schema::{order_lines, outbox_events, payments};
use crate::MysqlStore;

#[derive(Debug, QueryableByName)]
struct RankedRow {
    #[diesel(embed)]
    product: ProductRow,
    #[diesel(sql_type = BigInt)]
    sold: i64,
}

#[async_trait]
impl SalesRanking for MysqlStore {
    async fn top_sellers(
        &self,
        since: DateTime<Utc>,
        size: usize,
    ) -> anyhow::Result<Vec<RankedProduct>> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let rows: Vec<RankedRow> = self
            .blocking(move |c| {
                // A range scan of the (hour, product_id) key: at most 24 × days buckets per
                // product, however many payments there were.
                diesel::sql_query(
                    "SELECT p.id, p.name, p.price, p.available, p.reserved, s.sold \
                     FROM (SELECT product_id, CAST(SUM(units) AS SIGNED) AS sold \
                           FROM sales_hourly WHERE hour >= ? \
                           GROUP BY product_id ORDER BY sold DESC, product_id ASC LIMIT ?) s \
                     JOIN products p ON p.id = s.product_id \
                     ORDER BY s.sold DESC, p.id ASC",
                )
                .bind::<Datetime, _>(to_db(since))
                .bind::<BigInt, _>(size)
                .load(c)
            })
            .await??;
        rows.into_iter()
            .map(|row| {
                Ok(RankedProduct {
                    product: row.product.into_product()?,
                    sold: row.sold,
                })
            })
            .collect()
    }
}

#[derive(Debug, Queryable)]
struct QueuedRow {
    event_id: String,
    occurred_at: chrono::NaiveDateTime,
    payment_id: String,
    order_id: String,
    user_id: String,
    amount: i64,
    paid_at: chrono::NaiveDateTime,
}

#[async_trait]
impl Outbox for MysqlStore {
    async fn undelivered(&self, limit: usize) -> anyhow::Result<Vec<PaymentCompleted>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (queued, lines): (Vec<QueuedRow>, Vec<LineRow>) = self
            .blocking(move |c| {
                let queued: Vec<QueuedRow> = outbox_events::table
                    .inner_join(payments::table)
                    .filter(outbox_events::delivered_at.is_null())
                    .order(outbox_events::seq.asc())
                    .limit(limit)
                    .select((
                        outbox_events::event_id,
                        outbox_events::occurred_at,
                        payments::id,
                        payments::order_id,
                        payments::user_id,
                        payments::amount,
                        payments::paid_at,
                    ))
                    .load(c)?;
                let orders: Vec<&str> = queued.iter().map(|q| q.order_id.as_str()).collect();
                let lines = order_lines::table
                    .filter(order_lines::order_id.eq_any(orders))
                    .order((order_lines::order_id, order_lines::product_id))
                    .select(LineRow::as_select())
                    .load(c)?;
                Ok::<_, diesel::result::Error>((queued, lines))
            })
            .await??;
        let mut lines_by_order: HashMap<&str, Vec<&LineRow>> = HashMap::new();
        for line in &lines {
            lines_by_order
                .entry(line.order_id.as_str())
                .or_default()
                .push(line);
        }
        queued
            .iter()
            .map(|q| {
                let lines = lines_by_order
                    .get(q.order_id.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                Ok(PaymentCompleted {
                    event_id: EventId::new(q.event_id.clone()),
                    occurred_at: from_db(q.occurred_at),
                    payment: Payment {
                        id: PaymentId::new(q.payment_id.clone()),
                        order_id: OrderId::new(q.order_id.clone()),
                        user_id: UserId::parse(&q.user_id)?,
                        amount: Points::new(q.amount)?,
                        paid_at: from_db(q.paid_at),
                        lines: lines
                            .iter()
                            .map(|l| l.to_line())
                            .collect::<anyhow::Result<_>>()?,
                    },
                })
            })
            .collect()
    }

    async fn mark_delivered(&self, ids: Vec<EventId>) -> anyhow::Result<()> {
        let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
        self.blocking(move |c| {
            diesel::update(
                outbox_events::table
                    .filter(outbox_events::event_id.eq_any(keys))
                    .filter(outbox_events::delivered_at.is_null()),
            )
            .set(outbox_events::delivered_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<Datetime>,
            >("UTC_TIMESTAMP(6)")))
            .execute(c)
        })
        .await??;
        Ok(())
    }
}

#[async_trait]
impl HealthProbe for MysqlStore {
    async fn check(&self) -> anyhow::Result<()> {
        self.blocking(|c| diesel::sql_query("SELECT 1").execute(c))
            .await??;
        Ok(())
    }
}
