//! Coalesced point reads: `GET /product/{id}` and `GET /user/{id}/point` calls that arrive while
//! a read round is in the database are answered by the next round, one
//! `SELECT … WHERE id IN (…)` for all of them. The same no-timer shape as the write batches
//! (`batch`): a call that finds no round running starts one at once (a round of one), calls
//! that arrive meanwhile form the next.
//!
//! No cache: every answer comes from a statement that started after its call arrived (a call
//! that arrives during a round waits for the next one), so stock stays exact across instances.
//! A round is one autocommit `SELECT` on a pooled connection — no transaction, no lock.
//!
//! The statement is prepared once per list length and kept by diesel's statement cache (keyed
//! by its text): the list is padded to a power of two by repeating its last id, so only a few
//! lengths exist (1, 2, 4, …, [`MAX_ROUND`]).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::anyhow;
use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, SingleValue, Text};

use crate::batch::Batcher;
use crate::rows::ProductRow;
use crate::{Conn, MysqlStore};

/// The most ids one round reads (calls past it wait for the next round).
pub(crate) const MAX_ROUND: usize = 256;

/// Reads the rows of these ids (those that exist), each with its id.
type LoadRows<K, V> = fn(&mut Conn, &[K]) -> QueryResult<Vec<(K, V)>>;

/// One row kind's queue of point reads.
pub(crate) struct PointReader<K, V> {
    what: &'static str,
    queue: Batcher<K, anyhow::Result<Option<V>>>,
    load: LoadRows<K, V>,
    stats: PointReadStats,
}

/// How point reads have been grouped into rounds since the store opened.
#[derive(Debug, Default)]
pub struct PointReadStats {
    rounds: AtomicU64,
    calls: AtomicU64,
    largest: AtomicU64,
}

impl PointReadStats {
    /// `SELECT`s run.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Calls those `SELECT`s answered.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The most calls one round answered.
    pub fn largest(&self) -> u64 {
        self.largest.load(Ordering::Relaxed)
    }
}

/// The point reads of both kinds.
pub(crate) struct PointReads {
    pub(crate) products: Arc<PointReader<i64, ProductRow>>,
    pub(crate) balances: Arc<PointReader<String, i64>>,
}

impl Default for PointReads {
    fn default() -> Self {
        Self {
            products: Arc::new(PointReader::new("products", load_products)),
            balances: Arc::new(PointReader::new("balances", load_balances)),
        }
    }
}

impl std::fmt::Debug for PointReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointReads")
            .field("products", &self.products.stats)
            .field("balances", &self.balances.stats)
            .finish()
    }
}

impl<K, V> PointReader<K, V>
where
    K: Ord + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn new(what: &'static str, load: LoadRows<K, V>) -> Self {
        Self { what, queue: Batcher::default(), load, stats: PointReadStats::default() }
    }

    /// The row with id `key`, read by the next round (`None`: no such row).
    pub(crate) async fn read(
        self: &Arc<Self>,
        store: &MysqlStore,
        key: K,
    ) -> anyhow::Result<Option<V>> {
        let (answer, start) =
            self.queue.submit(key, tracing::Span::current(), store.options.pipeline);
        if start {
            // Detached, so a caller that gives up does not stop the round others wait on.
            let (this, store) = (self.clone(), store.clone());
            tokio::spawn(async move { this.drain(&store).await });
        }
        answer
            .await
            .map_err(|_| anyhow!("a round of {} reads ended without an answer", self.what))?
    }

    /// Runs rounds until the queue is empty.
    async fn drain(&self, store: &MysqlStore) {
        while let Some(round) = self.queue.next_batch(MAX_ROUND, |_| 1) {
            let calls = round.len() as u64;
            self.stats.rounds.fetch_add(1, Ordering::Relaxed);
            self.stats.calls.fetch_add(calls, Ordering::Relaxed);
            self.stats.largest.fetch_max(calls, Ordering::Relaxed);
            let keys: Vec<K> = round
                .iter()
                .map(|(key, _)| key)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .cloned()
                .collect();
            let load = self.load;
            let rows = store.blocking(move |c| load(c, &padded(keys))).await;
            match rows {
                Ok(Ok(rows)) => {
                    let rows: HashMap<K, V> = rows.into_iter().collect();
                    for (key, reply) in round {
                        reply.send(Ok(rows.get(&key).cloned()));
                    }
                }
                Ok(Err(error)) => self.fail(round, &anyhow::Error::new(error)),
                Err(error) => self.fail(round, &error),
            }
        }
    }

    fn fail(
        &self,
        round: Vec<(K, crate::batch::Caller<anyhow::Result<Option<V>>>)>,
        error: &anyhow::Error,
    ) {
        let error = format!("{error:#}");
        for (_, reply) in round {
            reply.send(Err(anyhow!("reading {}: {error}", self.what)));
        }
    }
}

/// `keys` (distinct, at least one) padded to a power of two by repeating the last one.
fn padded<K: Clone>(mut keys: Vec<K>) -> Vec<K> {
    let len = keys.len().next_power_of_two();
    if let Some(last) = keys.last().cloned() {
        keys.resize(len, last);
    }
    keys
}

fn load_products(c: &mut Conn, ids: &[i64]) -> QueryResult<Vec<(i64, ProductRow)>> {
    let rows: Vec<ProductRow> =
        IdsIn::<_, BigInt, ProductSql>::new("SELECT id, name, price, available FROM products", ids)
            .load(c)?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

fn load_balances(c: &mut Conn, ids: &[String]) -> QueryResult<Vec<(String, i64)>> {
    IdsIn::<_, Text, BalanceSql>::new("SELECT id, balance FROM users", ids).load(c)
}

type ProductSql = (BigInt, Text, BigInt, BigInt);
type BalanceSql = (Text, BigInt);

/// `{select} WHERE id IN (?, …)`, one bind per id. Unlike diesel's `eq_any`, whose statements
/// are never cached (any length may come), this one is cached by its text: the caller keeps
/// the lengths few ([`padded`]).
struct IdsIn<'a, K, KeySql, RowSql> {
    select: &'static str,
    ids: &'a [K],
    sql_types: PhantomData<(KeySql, RowSql)>,
}

impl<'a, K, KeySql, RowSql> IdsIn<'a, K, KeySql, RowSql> {
    fn new(select: &'static str, ids: &'a [K]) -> Self {
        Self { select, ids, sql_types: PhantomData }
    }
}

impl<K, KeySql, RowSql> QueryId for IdsIn<'_, K, KeySql, RowSql> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<K, KeySql, RowSql> Query for IdsIn<'_, K, KeySql, RowSql>
where
    RowSql: diesel::sql_types::SqlType,
{
    type SqlType = RowSql;
}

impl<K, KeySql, RowSql> QueryFragment<Mysql> for IdsIn<'_, K, KeySql, RowSql>
where
    K: ToSql<KeySql, Mysql>,
    KeySql: SingleValue,
    Mysql: HasSqlType<KeySql>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        out.push_sql(self.select);
        out.push_sql(" WHERE id IN (");
        for (i, id) in self.ids.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<KeySql, _>(id)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

impl<K, KeySql, RowSql> RunQueryDsl<Conn> for IdsIn<'_, K, KeySql, RowSql> {}

impl MysqlStore {
    /// How `GET /product/{id}` reads have been grouped into rounds so far.
    pub fn product_read_stats(&self) -> &PointReadStats {
        &self.point_reads.products.stats
    }

    /// How `GET /user/{id}/point` reads have been grouped into rounds so far.
    pub fn balance_read_stats(&self) -> &PointReadStats {
        &self.point_reads.balances.stats
    }
}

#[cfg(test)]
mod tests {
    use super::padded;

    #[test]
    fn lists_are_padded_to_a_power_of_two_with_the_last_id() {
        assert_eq!(padded(vec![7]), [7]);
        assert_eq!(padded(vec![1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(padded(vec![1, 2, 3, 4, 5]), [1, 2, 3, 4, 5, 5, 5, 5]);
        assert_eq!(padded((0..256).collect()).len(), 256);
    }
}
