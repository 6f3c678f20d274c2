//! Loading: the rows a batch has locked, as the `domain::rules` snapshot its calls are folded
//! through. Locking itself (the order, the lanes) is `locking`'s; writing back what changed is
//! `writes`'.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use domain::rules::{Account, Shelf, Shelves};
use domain::values::{Points, Price, ProductId, Stock, UserId};

use crate::batch::{Busy, Ctx};
use crate::locking::{BalanceRow, StockRow, CHUNK};
use crate::rows::{FormRow, LineRow, PENDING};
use crate::schema::{order_forms, order_lines, users};
use crate::tx::TxError;
use crate::Conn;

/// A user, their balance, and one line of their pending form (when they have one).
type AccountRow = (
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Locks each user, with their pending form and its lines, by ascending user id (one statement
/// per [`CHUNK`] users): the global lock order (a user, then that user's form) holds. Never with
/// `SKIP LOCKED`: a skipped form row would read as "no pending form". Users that do not exist
/// are not in the answer. The users locked are noted as held by the batch ([`Ctx::holds`]).
pub(crate) fn lock_accounts<'a>(
    c: &mut Conn,
    ctx: &Ctx,
    users: impl IntoIterator<Item = &'a UserId>,
) -> Result<HashMap<UserId, Account>, TxError<anyhow::Error>> {
    let user_ids: BTreeSet<&str> = users.into_iter().map(UserId::as_str).collect();
    let user_ids: Vec<&str> = user_ids.into_iter().collect();
    let mut accounts = HashMap::new();
    for chunk in user_ids.chunks(CHUNK) {
        let rows: Vec<AccountRow> = users::table
            .left_join(order_forms::table.on(order_forms::pending_user.eq(users::id.nullable())))
            .left_join(order_lines::table.on(order_lines::order_id.eq(order_forms::id)))
            .filter(users::id.eq_any(chunk))
            .order((users::id, order_lines::product_id))
            .select((
                users::id,
                users::balance,
                order_forms::id.nullable(),
                order_forms::total.nullable(),
                order_forms::created_at.nullable(),
                order_forms::expires_at.nullable(),
                order_lines::product_id.nullable(),
                order_lines::count.nullable(),
                order_lines::price.nullable(),
            ))
            .for_update()
            .load(c)?;
        // The rows come by user: each user once, or once per line of their pending form.
        let mut loaded: Vec<(String, i64, Option<FormRow>, Vec<LineRow>)> = Vec::new();
        for (user, balance, form, total, created_at, expires_at, product, count, price) in rows {
            if loaded.last().is_none_or(|(last, ..)| *last != user) {
                let form = match (form, total, created_at, expires_at) {
                    (Some(id), Some(total), Some(created_at), Some(expires_at)) => Some(FormRow {
                        id,
                        user_id: user.clone(),
                        status: PENDING.to_owned(),
                        total,
                        created_at,
                        expires_at,
                    }),
                    _ => None,
                };
                loaded.push((user.clone(), balance, form, Vec::new()));
            }
            if let Some((_, _, Some(form), lines)) = loaded.last_mut() {
                if let (Some(product_id), Some(count), Some(price)) = (product, count, price) {
                    lines.push(LineRow { order_id: form.id.clone(), product_id, count, price });
                }
            }
        }
        for (user, balance, form, lines) in loaded {
            let (id, account) = account(&user, balance, form, &lines).map_err(TxError::Rejected)?;
            accounts.insert(id, account);
        }
    }
    ctx.holds(Busy::users(accounts.keys().map(UserId::as_str)));
    Ok(accounts)
}

fn account(
    user: &str,
    balance: i64,
    form: Option<FormRow>,
    lines: &[LineRow],
) -> anyhow::Result<(UserId, Account)> {
    let context = || format!("corrupt row of user {user}");
    let pending = form.map(|form| form.into_order(lines)).transpose()?;
    let balance = Points::new(balance).with_context(context)?;
    Ok((UserId::parse(user).with_context(context)?, Account { balance, pending }))
}

/// Users as a charge locks them: balances only (a charge needs no form).
pub(crate) fn balances(rows: Vec<BalanceRow>) -> anyhow::Result<HashMap<UserId, Account>> {
    rows.into_iter()
        .map(|(user, balance)| {
            let context = || format!("corrupt row of user {user}");
            let balance = Points::new(balance).with_context(context)?;
            Ok((UserId::parse(&user).with_context(context)?, Account { balance, pending: None }))
        })
        .collect()
}

/// Product rows as a batch locked them.
pub(crate) fn shelves(rows: Vec<StockRow>) -> anyhow::Result<Shelves> {
    rows.into_iter()
        .map(|(id, price, available, reserved)| {
            let context = || format!("corrupt product row {id}");
            let shelf = Shelf {
                price: Price::new(price).with_context(context)?,
                available: Stock::new(available).with_context(context)?,
                reserved: Stock::new(reserved).with_context(context)?,
            };
            Ok((ProductId::new(id).with_context(context)?, shelf))
        })
        .collect()
}
