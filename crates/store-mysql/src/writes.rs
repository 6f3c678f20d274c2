//! Persisting: what a batch's fold changed, as one multi-statement text sent in one round trip
//! (see `sql_text::execute`). Every row written here is locked by the batch, so the values are
//! absolute and exact.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use domain::model::{sales_hour, Order, PaymentPlan};
use domain::rules::{Account, Settlement, Shelves};
use domain::values::{OrderId, Points, UserId};

use crate::rows::{to_db, NewForm, EXPIRED, PAID, PENDING, REPLACED};
use crate::sql_text::{self, datetime, text};

/// The shelves whose stock differs from `before`: `available` and `reserved`, absolute.
fn stock(shelves: &Shelves, before: &Shelves) -> Option<String> {
    let changed: Vec<(String, Vec<String>)> = shelves
        .iter()
        .filter(|(id, shelf)| before.get(id) != Some(shelf))
        .map(|(id, shelf)| {
            let values = vec![shelf.available.get().to_string(), shelf.reserved.get().to_string()];
            (id.get().to_string(), values)
        })
        .collect();
    (!changed.is_empty())
        .then(|| sql_text::update_by_id("products", &["available", "reserved"], &changed))
}

/// The balances that differ from `before` (see [`balances_of`]).
pub(crate) fn balances(
    accounts: &HashMap<UserId, Account>,
    before: &HashMap<UserId, Points>,
) -> Option<String> {
    let changed: Vec<(String, Vec<String>)> = accounts
        .iter()
        .filter(|(id, account)| before.get(*id) != Some(&account.balance))
        .map(|(id, account)| (text(id.as_str()), vec![account.balance.get().to_string()]))
        .collect();
    (!changed.is_empty()).then(|| sql_text::update_by_id("users", &["balance"], &changed))
}

/// Each account's balance, to compare with after a fold (cheaper to keep than the accounts
/// with their forms).
pub(crate) fn balances_of(accounts: &HashMap<UserId, Account>) -> HashMap<UserId, Points> {
    accounts.iter().map(|(id, account)| (id.clone(), account.balance)).collect()
}

/// A batch of orders: the stock that moved, the stored forms that were replaced (first, so the
/// new forms never meet the one-pending-form-per-user key), the new forms — those replaced
/// within the batch already closed, at the given time — and their lines.
pub(crate) fn orders(
    shelves: &Shelves,
    before: &Shelves,
    replaced: &[(OrderId, DateTime<Utc>)],
    placed: &[(&Order, Option<DateTime<Utc>>)],
) -> String {
    let mut sql: Vec<String> = stock(shelves, before).into_iter().collect();
    if !replaced.is_empty() {
        let closed: Vec<(String, Vec<String>)> = replaced
            .iter()
            .map(|(id, at)| {
                let values = vec![format!("'{REPLACED}'"), "NULL".to_owned(), datetime(to_db(*at))];
                (text(id.as_str()), values)
            })
            .collect();
        sql.push(sql_text::update_by_id(
            "order_forms",
            &["status", "pending_user", "closed_at"],
            &closed,
        ));
    }
    if !placed.is_empty() {
        let forms: Vec<String> = placed
            .iter()
            .map(|&(order, closed)| {
                let form = match closed {
                    Some(at) => NewForm::replaced(order, to_db(at)),
                    None => NewForm::pending(order),
                };
                format!(
                    "({}, {}, {}, '{}', {}, {}, {}, {})",
                    text(form.id),
                    text(form.user_id),
                    sql_text::text_or_null(form.pending_user),
                    form.status,
                    form.total,
                    datetime(form.created_at),
                    datetime(form.expires_at),
                    sql_text::datetime_or_null(form.closed_at),
                )
            })
            .collect();
        sql.push(format!(
            "INSERT INTO order_forms \
             (id, user_id, pending_user, status, total, created_at, expires_at, closed_at) \
             VALUES {}",
            forms.join(",")
        ));
        let lines: Vec<String> = placed
            .iter()
            .flat_map(|(order, _)| {
                let id = text(order.id.as_str());
                order.lines.iter().map(move |line| {
                    format!(
                        "({id}, {}, {}, {})",
                        line.product_id.get(),
                        line.count.get(),
                        line.price.get()
                    )
                })
            })
            .collect();
        sql.push(format!(
            "INSERT INTO order_lines (order_id, product_id, count, price) VALUES {}",
            lines.join(",")
        ));
    }
    sql.join(";\n")
}

/// A batch of payments (at least one settled): the balances debited, the forms settled, the
/// units sold leaving `reserved`, the hourly sales, the payments and their outbox events.
pub(crate) fn payments(
    accounts: &HashMap<UserId, Account>,
    accounts_before: &HashMap<UserId, Points>,
    shelves: &Shelves,
    shelves_before: &Shelves,
    settled: &[(&PaymentPlan, Settlement)],
) -> String {
    let mut sales: BTreeMap<(NaiveDateTime, i64), i64> = BTreeMap::new();
    let mut forms = Vec::new();
    let mut payments = Vec::new();
    let mut events = Vec::new();
    for (PaymentPlan { payment, event }, settlement) in settled {
        let paid_at = to_db(payment.paid_at);
        forms.push((
            text(payment.order_id.as_str()),
            vec![format!("'{PAID}'"), "NULL".to_owned(), datetime(paid_at)],
        ));
        let hour = to_db(sales_hour(payment.paid_at));
        for line in &settlement.form.lines {
            *sales.entry((hour, line.product_id.get())).or_insert(0) += line.count.get();
        }
        payments.push(format!(
            "({}, {}, {}, {}, {})",
            text(payment.id.as_str()),
            text(payment.order_id.as_str()),
            text(payment.user_id.as_str()),
            payment.amount.get(),
            datetime(paid_at)
        ));
        let occurred = datetime(to_db(event.occurred_at));
        events.push(format!(
            "({}, {}, {occurred}, {occurred})",
            text(event.event_id.as_str()),
            text(payment.id.as_str())
        ));
    }
    let sales: Vec<String> = sales
        .into_iter()
        .map(|((hour, product), units)| format!("({}, {product}, {units})", datetime(hour)))
        .collect();
    let mut sql: Vec<String> = balances(accounts, accounts_before).into_iter().collect();
    sql.push(sql_text::update_by_id(
        "order_forms",
        &["status", "pending_user", "closed_at"],
        &forms,
    ));
    sql.extend(stock(shelves, shelves_before));
    sql.push(format!(
        "INSERT INTO sales_hourly (hour, product_id, units) VALUES {} \
         ON DUPLICATE KEY UPDATE units = units + VALUES(units)",
        sales.join(",")
    ));
    sql.push(format!(
        "INSERT INTO payments (id, order_id, user_id, amount, paid_at) VALUES {}",
        payments.join(",")
    ));
    sql.push(format!(
        "INSERT INTO outbox_events (event_id, payment_id, occurred_at, next_attempt_at) VALUES {}",
        events.join(",")
    ));
    sql.join(";\n")
}

/// An expiry sweep: the forms expired (their status still guarded, though the sweep read them
/// pending and locked) and the units they gave back.
pub(crate) fn expiry(
    expired: &[String],
    at: NaiveDateTime,
    shelves: &Shelves,
    before: &Shelves,
) -> String {
    let ids: Vec<String> = expired.iter().map(|id| text(id)).collect();
    let mut sql = vec![format!(
        "UPDATE order_forms SET status = '{EXPIRED}', pending_user = NULL, closed_at = {} \
         WHERE id IN ({}) AND status = '{PENDING}'",
        datetime(at),
        ids.join(",")
    )];
    sql.extend(stock(shelves, before));
    sql.join(";\n")
}
