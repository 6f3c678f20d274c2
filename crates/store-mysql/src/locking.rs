//! Locking reads that batches share: in ascending id order (the global lock order), in chunks
//! that stay far below MariaDB's 65 535 placeholders per statement, waiting for held rows or
//! skipping them (see `batch::Lane`).

use std::collections::BTreeSet;

use diesel::prelude::*;

use crate::batch::Lane;
use crate::schema::{products, users};
use crate::Conn;

/// The most values one `IN (…)` list binds (MariaDB refuses a statement with more than 65 535
/// placeholders). A batch's rows are locked chunk by chunk, ascending, so the lock order holds.
pub(crate) const CHUNK: usize = 20_000;

/// A product row as a batch locks it: id, price, available, reserved.
pub(crate) type StockRow = (i64, i64, i64, i64);

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
) -> QueryResult<Vec<(String, i64)>> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let query = users::table
            .filter(users::id.eq_any(chunk))
            .order(users::id)
            .select((users::id, users::balance))
            .for_update();
        match lane {
            Lane::Skip => rows.extend(query.skip_locked().load::<(String, i64)>(c)?),
            Lane::Wait => rows.extend(query.load::<(String, i64)>(c)?),
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
