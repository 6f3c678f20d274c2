//! The sales ranking: units sold per product over the hourly buckets, with the sums of the
//! hours that are over kept between queries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime};
use domain::model::{sales_hour, RankedProduct};
use domain::ports::SalesRanking;

use crate::rows::{to_db, ProductRow};
use crate::schema::products;
use crate::{Conn, MysqlStore};

/// The sums per product of the sales hours that are over, kept between ranking queries: with a
/// million bucket rows, summing the closed hours is ~0.2 s of MariaDB's time, and they change
/// only when the window's first hour moves (hourly) — or when a payment is recorded in an
/// hour already summed, which bumps the generation and so drops the sums.
#[derive(Debug, Default)]
pub(crate) struct ClosedHours {
    generation: AtomicU64,
    /// The latest end (µs since the epoch) any ranking has summed up to, set before its query.
    summed_to: AtomicI64,
    kept: Mutex<Option<ClosedSums>>,
}

#[derive(Debug, Clone)]
struct ClosedSums {
    since: NaiveDateTime,
    end: NaiveDateTime,
    generation: u64,
    sums: Arc<HashMap<i64, i64>>,
}

impl ClosedHours {
    fn keep(
        &self,
        since: NaiveDateTime,
        end: NaiveDateTime,
        generation: u64,
        sums: Arc<HashMap<i64, i64>>,
    ) {
        *self.kept() = Some(ClosedSums { since, end, generation, sums });
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<ClosedSums>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, since: NaiveDateTime, end: NaiveDateTime) -> Option<Arc<HashMap<i64, i64>>> {
        let generation = self.generation.load(Ordering::SeqCst);
        self.kept()
            .as_ref()
            .filter(|k| k.since == since && k.end == end && k.generation == generation)
            .map(|k| k.sums.clone())
    }

    /// Starts a summing up to `end`: returns the generation the sums will belong to. Marking
    /// `end` first means a payment that commits into a summed hour from now on is seen by
    /// [`Self::paid_in`]; one that committed before is in what the query reads.
    fn start(&self, end: NaiveDateTime) -> u64 {
        self.summed_to.fetch_max(end.and_utc().timestamp_micros(), Ordering::SeqCst);
        self.generation.load(Ordering::SeqCst)
    }

    /// Called once a payment has committed: a sale in an hour some ranking has summed makes
    /// the kept sums stale.
    pub(crate) fn paid_in(&self, hour: NaiveDateTime) {
        if hour.and_utc().timestamp_micros() < self.summed_to.load(Ordering::SeqCst) {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Units sold per product in `[from, to)` (to `None`: no end).
fn sums(c: &mut Conn, from: NaiveDateTime, to: Option<NaiveDateTime>) -> QueryResult<Vec<Sum>> {
    match to {
        Some(to) => diesel::sql_query(
            "SELECT product_id, CAST(SUM(units) AS SIGNED) AS sold FROM sales_hourly \
             WHERE hour >= ? AND hour < ? GROUP BY product_id",
        )
        .bind::<Datetime, _>(from)
        .bind::<Datetime, _>(to)
        .load(c),
        None => diesel::sql_query(
            "SELECT product_id, CAST(SUM(units) AS SIGNED) AS sold FROM sales_hourly \
             WHERE hour >= ? GROUP BY product_id",
        )
        .bind::<Datetime, _>(from)
        .load(c),
    }
}

#[derive(Debug, QueryableByName)]
struct Sum {
    #[diesel(sql_type = BigInt)]
    product_id: i64,
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
        // Hours that ended an hour or more before now (the store's clock, the shop's in `app`)
        // are over: a payment is recorded in the hour of its own `paid_at`, and instances'
        // clocks agree to within that hour.
        let now = self.clock.now();
        let since = to_db(since);
        let end = to_db(sales_hour(now) - TimeDelta::hours(1)).max(since);
        let generation = self.closed_hours.start(end);
        let kept = self.closed_hours.get(since, end);
        let (closed, ranked) = self
            .blocking(move |c| {
                let closed = match kept {
                    Some(kept) => kept,
                    None => Arc::new(
                        sums(c, since, Some(end))?
                            .into_iter()
                            .map(|s| (s.product_id, s.sold))
                            .collect(),
                    ),
                };
                let mut totals: HashMap<i64, i64> = (*closed).clone();
                for open in sums(c, end, None)? {
                    *totals.entry(open.product_id).or_insert(0) += open.sold;
                }
                let mut top: Vec<(i64, i64)> =
                    totals.into_iter().filter(|(_, sold)| *sold > 0).collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                top.truncate(size);
                let ids: Vec<i64> = top.iter().map(|(id, _)| *id).collect();
                let mut rows: HashMap<i64, ProductRow> = products::table
                    .filter(products::id.eq_any(&ids))
                    .select(ProductRow::as_select())
                    .load::<ProductRow>(c)?
                    .into_iter()
                    .map(|row| (row.id, row))
                    .collect();
                let ranked: Vec<(ProductRow, i64)> = top
                    .into_iter()
                    .filter_map(|(id, sold)| rows.remove(&id).map(|row| (row, sold)))
                    .collect();
                Ok::<_, diesel::result::Error>((closed, ranked))
            })
            .await??;
        self.closed_hours.keep(since, end, generation, closed);
        ranked
            .into_iter()
            .map(|(row, sold)| Ok(RankedProduct { product: row.into_product()?, sold }))
            .collect()
    }
}
