//! The outbox: payment events claimed under a lease, retried, delivered, purged.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use domain::model::{
    ClaimedEvent, FailedAttempt, OutboxBacklog, OutboxEntry, Payment, PaymentCompleted,
    UnreadableEvent,
};
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
    payment_id: String,
    order_id: String,
    user_id: String,
    amount: i64,
    paid_at: NaiveDateTime,
}

/// A claimed row's own columns, known even when its event cannot be read back.
type DueRow = (i64, String, i32);

/// The most ids one statement binds (MariaDB allows 65 535 placeholders).
const IDS_PER_STATEMENT: usize = 1_000;

fn claim(
    c: &mut Conn,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<(Vec<DueRow>, Vec<QueuedRow>, Vec<LineRow>)> {
    // Rows another relay is claiming right now are skipped, not waited for; moving
    // next_attempt_at to the lease's end keeps them away from every relay until then.
    let due: Vec<DueRow> = outbox_events::table
        .filter(outbox_events::delivered_at.is_null())
        .filter(outbox_events::next_attempt_at.le(now))
        .order((outbox_events::next_attempt_at.asc(), outbox_events::seq.asc()))
        .select((outbox_events::seq, outbox_events::event_id, outbox_events::attempts))
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(c)?;
    if due.is_empty() {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    let seqs: Vec<i64> = due.iter().map(|(seq, _, _)| *seq).collect();
    diesel::update(outbox_events::table.filter(outbox_events::seq.eq_any(&seqs)))
        .set(outbox_events::next_attempt_at.eq(lease_until))
        .execute(c)?;
    let queued: Vec<QueuedRow> = outbox_events::table
        .inner_join(payments::table)
        .filter(outbox_events::seq.eq_any(&seqs))
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
    Ok((due, queued, lines))
}

/// The claimed rows in claim order, each read back as its event — or, when that fails (a
/// value that does not parse, a payment that is missing), as an unreadable row that the relay
/// records as a failed attempt without holding up the others.
fn to_claimed(due: &[DueRow], queued: &[QueuedRow], lines: &[LineRow]) -> Vec<ClaimedEvent> {
    let mut lines_by_order: HashMap<&str, Vec<&LineRow>> = HashMap::new();
    for line in lines {
        lines_by_order.entry(line.order_id.as_str()).or_default().push(line);
    }
    let by_event: HashMap<&str, &QueuedRow> =
        queued.iter().map(|q| (q.event_id.as_str(), q)).collect();
    due.iter()
        .map(|(_, event_id, attempts)| {
            let attempts = u32::try_from(*attempts).unwrap_or(0);
            let read = match by_event.get(event_id.as_str()) {
                Some(q) => {
                    let lines = lines_by_order
                        .get(q.order_id.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    to_event(q, lines)
                }
                None => Err(anyhow::anyhow!("its payment is missing")),
            };
            read.map(|event| OutboxEntry { event, attempts }).map_err(|error| UnreadableEvent {
                event_id: EventId::new(event_id.clone()),
                attempts,
                error: format!("{error:#}"),
            })
        })
        .collect()
}

fn to_event(q: &QueuedRow, lines: &[&LineRow]) -> anyhow::Result<PaymentCompleted> {
    Ok(PaymentCompleted {
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
    })
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
    ) -> anyhow::Result<Vec<ClaimedEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (now, lease_until) = (to_db(now), to_db(lease_until));
        // A claim run twice only leases rows that come due again at the lease's end.
        let (due, queued, lines) = self
            .transaction_rerun_if_lost("an outbox claim", move |c| {
                Ok(claim(c, now, lease_until, limit)?)
            })
            .await?;
        Ok(to_claimed(&due, &queued, &lines))
    }

    async fn mark_delivered(&self, ids: Vec<EventId>, at: DateTime<Utc>) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // In a transaction that is retried on a deadlock: on a Galera cluster, a claim by an
        // instance on another node conflicts with this update at certification.
        self.blocking(move |c| {
            transaction::<_, anyhow::Error>(c, |c| {
                // One statement per round of sends (chunked only past the placeholder budget).
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let chunk: Vec<&str> = chunk.iter().map(EventId::as_str).collect();
                    diesel::update(
                        outbox_events::table
                            .filter(outbox_events::event_id.eq_any(chunk))
                            .filter(outbox_events::delivered_at.is_null()),
                    )
                    .set(outbox_events::delivered_at.eq(Some(to_db(at))))
                    .execute(c)?;
                }
                Ok(())
            })
            .map_err(TxError::into_error)
        })
        .await??;
        Ok(())
    }

    async fn mark_failed(&self, failures: Vec<FailedAttempt>) -> anyhow::Result<()> {
        if failures.is_empty() {
            return Ok(());
        }
        // Each row gets its own retry time and error: one statement each, in one transaction
        // and one round of the pool (failures are the slow path; deliveries are batched).
        self.blocking(move |c| {
            transaction::<_, anyhow::Error>(c, |c| {
                for failure in &failures {
                    let error: String = failure.error.chars().take(ERROR_CHARS).collect();
                    diesel::update(
                        outbox_events::table
                            .filter(outbox_events::event_id.eq(failure.event_id.as_str()))
                            .filter(outbox_events::delivered_at.is_null()),
                    )
                    .set((
                        outbox_events::attempts.eq(outbox_events::attempts + 1),
                        outbox_events::next_attempt_at.eq(to_db(failure.retry_at)),
                        outbox_events::last_error.eq(Some(error)),
                    ))
                    .execute(c)?;
                }
                Ok(())
            })
            .map_err(TxError::into_error)
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
                transaction::<_, anyhow::Error>(c, |c| {
                    Ok(diesel::sql_query(
                        "DELETE FROM outbox_events WHERE delivered_at < ? LIMIT ?",
                    )
                    .bind::<diesel::sql_types::Datetime, _>(before)
                    .bind::<BigInt, _>(limit)
                    .execute(c)?)
                })
                .map_err(TxError::into_error)
            })
            .await??;
        Ok(purged)
    }
}
