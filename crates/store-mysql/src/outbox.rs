//! The outbox: payment events claimed under a lease, retried, delivered, purged.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use domain::model::{OutboxBacklog, OutboxEntry, Payment, PaymentCompleted};
use domain::ports::Outbox;
use domain::values::{EventId, OrderId, PaymentId, Points, UserId};

use crate::rows::{from_db, to_db, LineRow};
use crate::schema::{order_lines, outbox_events, payments};
use crate::tx::{transaction, TxError};
use crate::{Conn, MysqlStore};

/// The longest error text kept on a row (the column's size).
const ERROR_CHARS: usize = 1_000;

#[derive(Debug, Queryable)]
struct QueuedRow {
    event_id: String,
    occurred_at: NaiveDateTime,
    attempts: i32,
    payment_id: String,
    order_id: String,
    user_id: String,
    amount: i64,
    paid_at: NaiveDateTime,
}

fn claim(
    c: &mut Conn,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<(Vec<QueuedRow>, Vec<LineRow>)> {
    // Rows another relay is claiming right now are skipped, not waited for; moving
    // next_attempt_at to the lease's end keeps them away from every relay until then.
    let due: Vec<i64> = outbox_events::table
        .filter(outbox_events::delivered_at.is_null())
        .filter(outbox_events::next_attempt_at.le(now))
        .order((outbox_events::next_attempt_at.asc(), outbox_events::seq.asc()))
        .select(outbox_events::seq)
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(c)?;
    if due.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    diesel::update(outbox_events::table.filter(outbox_events::seq.eq_any(&due)))
        .set(outbox_events::next_attempt_at.eq(lease_until))
        .execute(c)?;
    let queued: Vec<QueuedRow> = outbox_events::table
        .inner_join(payments::table)
        .filter(outbox_events::seq.eq_any(&due))
        .order(outbox_events::seq.asc())
        .select((
            outbox_events::event_id,
            outbox_events::occurred_at,
            outbox_events::attempts,
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
    Ok((queued, lines))
}

fn to_entries(queued: &[QueuedRow], lines: &[LineRow]) -> anyhow::Result<Vec<OutboxEntry>> {
    let mut lines_by_order: HashMap<&str, Vec<&LineRow>> = HashMap::new();
    for line in lines {
        lines_by_order.entry(line.order_id.as_str()).or_default().push(line);
    }
    queued
        .iter()
        .map(|q| {
            let lines =
                lines_by_order.get(q.order_id.as_str()).map(Vec::as_slice).unwrap_or_default();
            Ok(OutboxEntry {
                event: PaymentCompleted {
                    event_id: EventId::new(q.event_id.clone()),
                    occurred_at: from_db(q.occurred_at),
                    payment: Payment {
                        id: PaymentId::new(q.payment_id.clone()),
                        order_id: OrderId::new(q.order_id.clone()),
                        user_id: UserId::parse(&q.user_id)?,
                        amount: Points::new(q.amount)?,
                        paid_at: from_db(q.paid_at),
                        lines: lines.iter().map(|l| l.to_line()).collect::<anyhow::Result<_>>()?,
                    },
                },
                attempts: u32::try_from(q.attempts).unwrap_or(0),
            })
        })
        .collect()
}

#[derive(Debug, QueryableByName)]
struct BacklogRow {
    #[diesel(sql_type = BigInt)]
    undelivered: i64,
    #[diesel(sql_type = BigInt)]
    failing: i64,
    #[diesel(sql_type = Nullable<diesel::sql_types::Datetime>)]
    oldest: Option<NaiveDateTime>,
}

#[async_trait]
impl Outbox for MysqlStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> anyhow::Result<Vec<OutboxEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (now, lease_until) = (to_db(now), to_db(lease_until));
        let (queued, lines) = self
            .blocking(move |c| {
                transaction::<_, anyhow::Error>(c, |c| Ok(claim(c, now, lease_until, limit)?))
                    .map_err(TxError::into_error)
            })
            .await??;
        to_entries(&queued, &lines)
    }

    async fn mark_delivered(&self, id: EventId, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.blocking(move |c| {
            diesel::update(
                outbox_events::table
                    .filter(outbox_events::event_id.eq(id.as_str()))
                    .filter(outbox_events::delivered_at.is_null()),
            )
            .set(outbox_events::delivered_at.eq(Some(to_db(at))))
            .execute(c)
        })
        .await??;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: EventId,
        retry_at: DateTime<Utc>,
        error: String,
    ) -> anyhow::Result<()> {
        let error: String = error.chars().take(ERROR_CHARS).collect();
        self.blocking(move |c| {
            diesel::update(
                outbox_events::table
                    .filter(outbox_events::event_id.eq(id.as_str()))
                    .filter(outbox_events::delivered_at.is_null()),
            )
            .set((
                outbox_events::attempts.eq(outbox_events::attempts + 1),
                outbox_events::next_attempt_at.eq(to_db(retry_at)),
                outbox_events::last_error.eq(Some(error)),
            ))
            .execute(c)
        })
        .await??;
        Ok(())
    }

    async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
        let (row, last_error) = self
            .blocking(|c| {
                let row: BacklogRow = diesel::sql_query(
                    "SELECT COUNT(*) AS undelivered, \
                            CAST(COALESCE(SUM(attempts > 0), 0) AS SIGNED) AS failing, \
                            MIN(occurred_at) AS oldest \
                     FROM outbox_events WHERE delivered_at IS NULL",
                )
                .get_result(c)?;
                let last_error: Option<Option<String>> = outbox_events::table
                    .filter(outbox_events::delivered_at.is_null())
                    .filter(outbox_events::attempts.gt(0))
                    .order(outbox_events::seq.asc())
                    .select(outbox_events::last_error)
                    .first(c)
                    .optional()?;
                Ok::<_, diesel::result::Error>((row, last_error.flatten()))
            })
            .await??;
        Ok(OutboxBacklog {
            undelivered: u64::try_from(row.undelivered).unwrap_or(0),
            failing: u64::try_from(row.failing).unwrap_or(0),
            oldest: row.oldest.map(from_db),
            last_error,
        })
    }

    async fn purge_delivered(&self, before: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let before = to_db(before);
        let purged = self
            .blocking(move |c| {
                diesel::sql_query("DELETE FROM outbox_events WHERE delivered_at < ? LIMIT ?")
                    .bind::<diesel::sql_types::Datetime, _>(before)
                    .bind::<BigInt, _>(limit)
                    .execute(c)
            })
            .await??;
        Ok(purged)
    }
}
