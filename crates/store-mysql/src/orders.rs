//! Order forms, reservations, expiry and payments: the transactions that keep SPEC §1.7.
//!
//! Lock order, everywhere: the user row, then the user's pending form, then product rows by
//! ascending id. The sweeper skips the user (it starts at the forms) but keeps the rest of the
//! order, so no two of these transactions can wait on each other in a cycle.

use std::collections::BTreeMap;

use anyhow::anyhow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime};
use domain::errors::{PayError, PlaceOrderError};
use domain::idempotency::Remember;
use domain::model::{sales_hour, Order, PaymentPlan, PaymentReceipt};
use domain::ports::{OrderRepository, PaymentRepository};
use domain::values::{Points, ProductId, UserId};

use crate::idempotency;
use crate::rows::{to_db, FormRow, LineRow, NewForm, EXPIRED, PAID, PENDING, REPLACED};
use crate::schema::{order_forms, order_lines, outbox_events, payments, products, users};
use crate::tx::{reject, transaction, TxError};
use crate::{Conn, MysqlStore};

/// The user's balance, locked for the rest of the transaction; `None` for an unknown user.
fn lock_user(c: &mut Conn, user: &UserId) -> QueryResult<Option<i64>> {
    users::table.find(user.as_str()).select(users::balance).for_update().first(c).optional()
}

/// The user's pending form (id, expiry), locked.
fn lock_pending_form(
    c: &mut Conn,
    user: &UserId,
) -> QueryResult<Option<(String, chrono::NaiveDateTime)>> {
    order_forms::table
        .filter(order_forms::pending_user.eq(user.as_str()))
        .select((order_forms::id, order_forms::expires_at))
        .for_update()
        .first(c)
        .optional()
}

fn lines_of(c: &mut Conn, order_ids: &[String]) -> QueryResult<Vec<LineRow>> {
    order_lines::table
        .filter(order_lines::order_id.eq_any(order_ids))
        .order((order_lines::order_id, order_lines::product_id))
        .select(LineRow::as_select())
        .load(c)
}

/// Moves `units` from reserved back to available for each product, by ascending id.
fn release(c: &mut Conn, units: &BTreeMap<i64, i64>) -> QueryResult<()> {
    for (&product, &count) in units {
        diesel::update(products::table.find(product))
            .set((
                products::available.eq(products::available + count),
                products::reserved.eq(products::reserved - count),
            ))
            .execute(c)?;
    }
    Ok(())
}

fn units_per_product(lines: &[LineRow]) -> BTreeMap<i64, i64> {
    let mut units = BTreeMap::new();
    for line in lines {
        *units.entry(line.product_id).or_insert(0) += line.count;
    }
    units
}

fn place(
    c: &mut Conn,
    order: &Order,
    remember: Option<&Remember>,
) -> Result<(), TxError<PlaceOrderError>> {
    idempotency::claim(c, remember, idempotency::ORDERED)?;
    let user = &order.user_id;
    let Some(balance) = lock_user(c, user)? else {
        return reject(PlaceOrderError::UnknownUser(user.clone()));
    };
    let wanted: Vec<i64> = order.lines.iter().map(|l| l.product_id.get()).collect();
    let known: Vec<i64> =
        products::table.filter(products::id.eq_any(&wanted)).select(products::id).load(c)?;
    if let Some(&missing) = wanted.iter().find(|id| !known.contains(id)) {
        let missing = ProductId::new(missing).map_err(|e| TxError::Rejected(anyhow!(e).into()))?;
        return reject(PlaceOrderError::UnknownProduct(missing));
    }

    // The net change per product: the new form's units minus what the old form gives back.
    let old = lock_pending_form(c, user)?;
    let old_lines = match &old {
        Some((id, _)) => lines_of(c, std::slice::from_ref(id))?,
        None => Vec::new(),
    };
    let mut delta = BTreeMap::new();
    for line in &order.lines {
        *delta.entry(line.product_id.get()).or_insert(0) += line.count.get();
    }
    for line in &old_lines {
        *delta.entry(line.product_id).or_insert(0) -= line.count;
    }
    // Stock first (ascending ids, so the first short product is named), then points.
    for (&product, &units) in &delta {
        if units > 0 {
            let reserved =
                diesel::update(products::table.find(product).filter(products::available.ge(units)))
                    .set((
                        products::available.eq(products::available - units),
                        products::reserved.eq(products::reserved + units),
                    ))
                    .execute(c)?;
            if reserved == 0 {
                let product =
                    ProductId::new(product).map_err(|e| TxError::Rejected(anyhow!(e).into()))?;
                return reject(PlaceOrderError::LackOfStock(product));
            }
        } else if units < 0 {
            release(c, &BTreeMap::from([(product, -units)]))?;
        }
    }
    if balance < order.total.get() {
        return reject(PlaceOrderError::LackOfPoints);
    }

    if let Some((old_id, _)) = &old {
        diesel::update(order_forms::table.find(old_id).filter(order_forms::status.eq(PENDING)))
            .set((
                order_forms::status.eq(REPLACED),
                order_forms::pending_user.eq(None::<String>),
                order_forms::closed_at.eq(Some(to_db(order.created_at))),
            ))
            .execute(c)?;
    }
    diesel::insert_into(order_forms::table).values(NewForm::pending(order)).execute(c)?;
    diesel::insert_into(order_lines::table).values(LineRow::of(order)).execute(c)?;
    idempotency::complete(c, remember, None, Some(order.id.as_str()), None)
}

fn expire_due(c: &mut Conn, now: DateTime<Utc>, limit: usize) -> QueryResult<usize> {
    let now = to_db(now);
    // Other sweepers' claims are skipped, not waited for; the status guard below is what
    // makes each form expire once.
    let due: Vec<String> = order_forms::table
        .filter(order_forms::status.eq(PENDING))
        .filter(order_forms::expires_at.le(now))
        .order(order_forms::expires_at.asc())
        .select(order_forms::id)
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .for_update()
        .skip_locked()
        .load(c)?;
    if due.is_empty() {
        return Ok(0);
    }
    let expired = diesel::update(
        order_forms::table
            .filter(order_forms::id.eq_any(&due))
            .filter(order_forms::status.eq(PENDING)),
    )
    .set((
        order_forms::status.eq(EXPIRED),
        order_forms::pending_user.eq(None::<String>),
        order_forms::closed_at.eq(Some(now)),
    ))
    .execute(c)?;
    let lines = lines_of(c, &due)?;
    release(c, &units_per_product(&lines))?;
    Ok(expired)
}

fn commit_payment(
    c: &mut Conn,
    plan: &PaymentPlan,
    remember: Option<&Remember>,
) -> Result<Points, TxError<PayError>> {
    idempotency::claim(c, remember, idempotency::PAID)?;
    let payment = &plan.payment;
    let user = &payment.user_id;
    let amount = payment.amount.get();
    let Some(balance) = lock_user(c, user)? else {
        return reject(PayError::NoPendingOrder);
    };
    let paid_at = to_db(payment.paid_at);
    match lock_pending_form(c, user)? {
        Some((id, expires_at)) if id == payment.order_id.as_str() && paid_at < expires_at => {}
        _ => return reject(PayError::NoPendingOrder),
    }
    if balance < amount {
        return reject(PayError::LackOfPoints);
    }
    let debited =
        diesel::update(users::table.find(user.as_str()).filter(users::balance.ge(amount)))
            .set(users::balance.eq(users::balance - amount))
            .execute(c)?;
    if debited != 1 {
        return reject(PayError::LackOfPoints);
    }
    let settled = diesel::update(
        order_forms::table.find(payment.order_id.as_str()).filter(order_forms::status.eq(PENDING)),
    )
    .set((
        order_forms::status.eq(PAID),
        order_forms::pending_user.eq(None::<String>),
        order_forms::closed_at.eq(Some(paid_at)),
    ))
    .execute(c)?;
    if settled != 1 {
        return reject(PayError::NoPendingOrder);
    }

    let hour = to_db(sales_hour(payment.paid_at));
    let lines = lines_of(c, &[payment.order_id.to_string()])?;
    for (product, units) in units_per_product(&lines) {
        let sold =
            diesel::update(products::table.find(product).filter(products::reserved.ge(units)))
                .set(products::reserved.eq(products::reserved - units))
                .execute(c)?;
        if sold != 1 {
            return Err(TxError::Rejected(
                anyhow!(
                    "product {product} has fewer units reserved than form {} holds",
                    payment.order_id
                )
                .into(),
            ));
        }
        diesel::sql_query(
            "INSERT INTO sales_hourly (hour, product_id, units) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE units = units + VALUES(units)",
        )
        .bind::<Datetime, _>(hour)
        .bind::<BigInt, _>(product)
        .bind::<BigInt, _>(units)
        .execute(c)?;
    }
    diesel::insert_into(payments::table)
        .values((
            payments::id.eq(payment.id.as_str()),
            payments::order_id.eq(payment.order_id.as_str()),
            payments::user_id.eq(user.as_str()),
            payments::amount.eq(amount),
            payments::paid_at.eq(paid_at),
        ))
        .execute(c)?;
    diesel::insert_into(outbox_events::table)
        .values((
            outbox_events::event_id.eq(plan.event.event_id.as_str()),
            outbox_events::payment_id.eq(payment.id.as_str()),
            outbox_events::occurred_at.eq(to_db(plan.event.occurred_at)),
            outbox_events::next_attempt_at.eq(to_db(plan.event.occurred_at)),
        ))
        .execute(c)?;
    let balance_after = balance - amount;
    idempotency::complete(c, remember, Some(balance_after), None, Some(payment.id.as_str()))?;
    Points::new(balance_after).map_err(|e| TxError::Rejected(anyhow!(e).into()))
}

#[async_trait]
impl OrderRepository for MysqlStore {
    async fn place(
        &self,
        order: Order,
        remember: Option<Remember>,
    ) -> Result<Order, PlaceOrderError> {
        self.blocking(move |c| {
            transaction(c, |c| place(c, &order, remember.as_ref())).map_err(TxError::into_error)?;
            Ok(order)
        })
        .await?
    }

    async fn pending(&self, user: UserId, now: DateTime<Utc>) -> anyhow::Result<Option<Order>> {
        let found: Option<(FormRow, Vec<LineRow>)> = self
            .blocking(move |c| {
                let form: Option<FormRow> = order_forms::table
                    .filter(order_forms::pending_user.eq(user.as_str()))
                    .filter(order_forms::expires_at.gt(to_db(now)))
                    .select(FormRow::as_select())
                    .first(c)
                    .optional()?;
                match form {
                    Some(form) => {
                        let lines = lines_of(c, std::slice::from_ref(&form.id))?;
                        Ok::<_, diesel::result::Error>(Some((form, lines)))
                    }
                    None => Ok(None),
                }
            })
            .await??;
        found.map(|(form, lines)| form.into_order(&lines)).transpose()
    }

    async fn expire_due(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
        let expired = self
            .blocking(move |c| {
                transaction::<_, anyhow::Error>(c, |c| Ok(expire_due(c, now, limit)?))
            })
            .await?;
        expired.map_err(|e| e.into_error().context("expiring due order forms"))
    }
}

#[async_trait]
impl PaymentRepository for MysqlStore {
    async fn commit_payment(
        &self,
        plan: PaymentPlan,
        remember: Option<Remember>,
    ) -> Result<PaymentReceipt, PayError> {
        self.blocking(move |c| {
            let balance = transaction(c, |c| commit_payment(c, &plan, remember.as_ref()))
                .map_err(TxError::into_error)?;
            Ok(PaymentReceipt { payment: plan.payment, balance })
        })
        .await?
    }
}
