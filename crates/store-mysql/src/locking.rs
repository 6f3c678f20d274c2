//! Locking reads that batches share: in ascending id order (the global lock order), in chunks
//! that stay far below MariaDB's 65 535 placeholders per statement, waiting for held rows or
//! skipping them (see `batch::Lane`).

use std::collections::BTreeSet;

use diesel::prelude::*;

use crate::batch::{Busy, Ctx, Lane};
use crate::schema::{products, users};
use crate::Conn;

/// The most values one `IN (…)` list binds (MariaDB refuses a statement with more than 65 535
/// placeholders). A batch's rows are locked chunk by chunk, ascending, so the lock order holds.
pub(crate) const CHUNK: usize = 20_000;

/// A product row as a batch locks it: id, price, available, reserved.
pub(crate) type StockRow = (i64, i64, i64, i64);

/// A user row as a charge locks it: id, balance.
pub(crate) type BalanceRow = (String, i64);

/// Locks the product rows `ids`, by ascending id. In [`Lane::Skip`] the rows another transaction
/// holds are left out (with the rows that do not exist: tell them apart with
/// [`existing_products`]).
pub(crate) fn lock_products(
    c: &mut Conn,
    ids: &BTreeSet<i64>,
    lane: Lane,
) -> QueryResult<Vec<StockRow>> {
    let ids: Vec<i64> = ids.iter().copied().collect();
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let query = products::table
            .filter(products::id.eq_any(chunk))
            .order(products::id)
            .select((products::id, products::price, products::available, products::reserved))
            .for_update();
        match lane {
            Lane::Skip => rows.extend(query.skip_locked().load::<StockRow>(c)?),
            Lane::Wait => rows.extend(query.load::<StockRow>(c)?),
        }
    }
    Ok(rows)
}

/// Which of `ids` are products, by a plain read (it waits for no lock): a row a locking read
/// skipped either exists and is held elsewhere, or does not exist.
pub(crate) fn existing_products(c: &mut Conn, ids: &[i64]) -> QueryResult<BTreeSet<i64>> {
    let mut found = BTreeSet::new();
    for chunk in ids.chunks(CHUNK) {
        found.extend(
            products::table
                .filter(products::id.eq_any(chunk))
                .select(products::id)
                .load::<i64>(c)?,
        );
    }
    Ok(found)
}

/// Locks the user rows `ids` (id, balance), by ascending id; [`Lane::Skip`] as for products.
pub(crate) fn lock_users(
    c: &mut Conn,
    ids: &BTreeSet<&str>,
    lane: Lane,
) -> QueryResult<Vec<BalanceRow>> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let query = users::table
            .filter(users::id.eq_any(chunk))
            .order(users::id)
            .select((users::id, users::balance))
            .for_update();
        match lane {
            Lane::Skip => rows.extend(query.skip_locked().load::<BalanceRow>(c)?),
            Lane::Wait => rows.extend(query.load::<BalanceRow>(c)?),
        }
    }
    Ok(rows)
}

/// Which of `ids` are users, by a plain read.
pub(crate) fn existing_users(c: &mut Conn, ids: &[&str]) -> QueryResult<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    for chunk in ids.chunks(CHUNK) {
        found.extend(users::table.filter(users::id.eq_any(chunk)).select(users::id).load(c)?);
    }
    Ok(found)
}

/// Locks a batch's product rows ([`lock_products`] in the batch's lane) and notes them as held
/// by it. In [`Lane::Skip`], rows left out that another main-lane batch of this store holds are
/// then waited for (a second statement; they are free within that batch's short transaction),
/// and of the rest, the ones that exist are returned as busy: held by someone else. With every
/// row locked at once this is one statement, as before.
pub(crate) fn lock_products_for(
    c: &mut Conn,
    ctx: &Ctx,
    ids: &BTreeSet<i64>,
) -> QueryResult<(Vec<StockRow>, BTreeSet<i64>)> {
    let mut rows = lock_products(c, ids, ctx.lane)?;
    ctx.holds(Busy::products(rows.iter().map(|row| row.0)));
    if ctx.lane == Lane::Wait || rows.len() == ids.len() {
        return Ok((rows, BTreeSet::new()));
    }
    let locked: BTreeSet<i64> = rows.iter().map(|row| row.0).collect();
    let mut missing: BTreeSet<i64> = ids.difference(&locked).copied().collect();
    let ours = ctx.held_here(&Busy::products(missing.iter().copied())).products;
    if !ours.is_empty() {
        let waited = lock_products(c, &ours, Lane::Wait)?;
        ctx.holds(Busy::products(waited.iter().map(|row| row.0)));
        for row in &waited {
            missing.remove(&row.0);
        }
        rows.extend(waited);
        rows.sort_unstable_by_key(|row| row.0);
    }
    let missing: Vec<i64> = missing.into_iter().collect();
    let busy = if missing.is_empty() { BTreeSet::new() } else { existing_products(c, &missing)? };
    Ok((rows, busy))
}

/// [`lock_products_for`] for user rows (charges).
pub(crate) fn lock_users_for(
    c: &mut Conn,
    ctx: &Ctx,
    ids: &BTreeSet<&str>,
) -> QueryResult<(Vec<BalanceRow>, BTreeSet<String>)> {
    let mut rows = lock_users(c, ids, ctx.lane)?;
    ctx.holds(Busy::users(rows.iter().map(|row| row.0.as_str())));
    if ctx.lane == Lane::Wait || rows.len() == ids.len() {
        return Ok((rows, BTreeSet::new()));
    }
    let mut missing: BTreeSet<&str> = ids.iter().copied().collect();
    for row in &rows {
        missing.remove(row.0.as_str());
    }
    let ours = ctx.held_here(&Busy::users(missing.iter().copied())).users;
    if !ours.is_empty() {
        let wanted: BTreeSet<&str> = ours.iter().map(String::as_str).collect();
        let waited = lock_users(c, &wanted, Lane::Wait)?;
        ctx.holds(Busy::users(waited.iter().map(|row| row.0.as_str())));
        for row in &waited {
            missing.remove(row.0.as_str());
        }
        rows.extend(waited);
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    let missing: Vec<&str> = missing.into_iter().collect();
    let busy = if missing.is_empty() { BTreeSet::new() } else { existing_users(c, &missing)? };
    Ok((rows, busy))
}
