//! The ranking's single flight: a decorator around the [`SalesRanking`] port that reuses an
//! answer for [`RANKING_FRESHNESS`] after its query started, and lets readers that arrive while
//! a query runs wait for it instead of starting their own. A burst of readers then costs the
//! store one query per period, however slow the query is. [`crate::Stores::from_one`] puts it
//! in front of every store's ranking.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::model::RankedProduct;
use crate::ports::{Clock, SalesRanking};

/// How long a computed ranking is reused: a payment shows up in the ranking within this time.
pub const RANKING_FRESHNESS: TimeDelta = TimeDelta::seconds(1);

/// A ranking query in flight, shared by every reader that arrives while it runs.
type RankingQuery = Shared<BoxFuture<'static, Result<Vec<RankedProduct>, Arc<anyhow::Error>>>>;

/// What a ranking was asked for: the window's start and the size.
type Asked = (DateTime<Utc>, usize);

/// [`SalesRanking`] with single flight and a [`RANKING_FRESHNESS`] cache (see the module).
/// An answer is reused only for the same window start and size.
pub struct CachedRanking {
    inner: Arc<dyn SalesRanking>,
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<State>>,
}

/// The last ranking and when its query started, and the query running now, if any.
#[derive(Default)]
struct State {
    fresh: Option<(DateTime<Utc>, Asked, Vec<RankedProduct>)>,
    running: Option<(DateTime<Utc>, Asked, RankingQuery)>,
}

impl fmt::Debug for CachedRanking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedRanking").finish_non_exhaustive()
    }
}

/// Whether something computed from a query that started at `at` is still fresh at `now`.
fn fresh(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= at && now - at < RANKING_FRESHNESS
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CachedRanking {
    /// Reads through `inner`, timing freshness by `clock` (the shop's clock).
    pub fn new(inner: Arc<dyn SalesRanking>, clock: Arc<dyn Clock>) -> Self {
        Self { inner, clock, state: Arc::default() }
    }

    /// A fresh ranking, or the query to wait for: one that is already running (if it started
    /// within the freshness period) or one started now.
    fn fresh_or_query(&self, asked: Asked) -> Result<Vec<RankedProduct>, RankingQuery> {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        if let Some((_, _, ranked)) =
            state.fresh.as_ref().filter(|(at, of, _)| *of == asked && fresh(*at, now))
        {
            return Ok(ranked.clone());
        }
        if let Some((_, _, query)) =
            state.running.as_ref().filter(|(at, of, _)| *of == asked && fresh(*at, now))
        {
            return Err(query.clone());
        }
        let (inner, cache) = (self.inner.clone(), self.state.clone());
        let query: RankingQuery = async move {
            let ranked = inner.top_sellers(asked.0, asked.1).await;
            let mut state = lock(&cache);
            // Only the query still registered clears itself (a newer one may have replaced it).
            if state.running.as_ref().is_some_and(|(at, of, _)| *at == now && *of == asked) {
                state.running = None;
            }
            match ranked {
                Ok(ranked) => {
                    // Stamped with when the query started: what it read is at least that fresh.
                    if state.fresh.as_ref().is_none_or(|(at, _, _)| *at <= now) {
                        state.fresh = Some((now, asked, ranked.clone()));
                    }
                    Ok(ranked)
                }
                Err(error) => Err(Arc::new(error)),
            }
        }
        .boxed()
        .shared();
        state.running = Some((now, asked, query.clone()));
        Err(query)
    }
}

#[async_trait]
impl SalesRanking for CachedRanking {
    async fn top_sellers(
        &self,
        since: DateTime<Utc>,
        size: usize,
    ) -> anyhow::Result<Vec<RankedProduct>> {
        match self.fresh_or_query((since, size)) {
            Ok(ranked) => Ok(ranked),
            Err(query) => query.await.map_err(|e| anyhow::anyhow!("{e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::model::Product;
    use crate::ports::MockSalesRanking;
    use crate::support::ManualClock;
    use crate::values::{Price, ProductId, ProductName, Stock};

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
    }

    fn ranked(sold: i64) -> Vec<RankedProduct> {
        let product = Product {
            id: ProductId::new(1).expect("valid id"),
            name: ProductName::parse("product 1").expect("valid name"),
            price: Price::new(10).expect("valid price"),
            available: Stock::new(0).expect("valid stock"),
        };
        vec![RankedProduct { product, sold }]
    }

    #[tokio::test]
    async fn a_ranking_is_reused_for_one_second_then_read_again() {
        let clock = Arc::new(ManualClock::new(t0()));
        let mut store = MockSalesRanking::new();
        let mut reads = 0;
        store.expect_top_sellers().times(2).returning(move |_, _| {
            reads += 1;
            Ok(ranked(reads))
        });
        let cached = CachedRanking::new(Arc::new(store), clock.clone());
        let sold = |ranked: Vec<RankedProduct>| ranked[0].sold;
        assert_eq!(cached.top_sellers(t0(), 5).await.map(sold).ok(), Some(1));
        clock.advance(TimeDelta::milliseconds(999));
        assert_eq!(cached.top_sellers(t0(), 5).await.map(sold).ok(), Some(1), "within a second");
        clock.advance(TimeDelta::milliseconds(1));
        assert_eq!(cached.top_sellers(t0(), 5).await.map(sold).ok(), Some(2), "after a second");
    }

    #[tokio::test]
    async fn another_window_or_size_is_read_afresh() {
        let clock = Arc::new(ManualClock::new(t0()));
        let mut store = MockSalesRanking::new();
        store.expect_top_sellers().times(3).returning(|_, size| Ok(ranked(size as i64)));
        let cached = CachedRanking::new(Arc::new(store), clock);
        let sold = |ranked: Vec<RankedProduct>| ranked[0].sold;
        assert_eq!(cached.top_sellers(t0(), 5).await.map(sold).ok(), Some(5));
        assert_eq!(cached.top_sellers(t0(), 2).await.map(sold).ok(), Some(2));
        let later = t0() + TimeDelta::hours(1);
        assert_eq!(cached.top_sellers(later, 2).await.map(sold).ok(), Some(2));
    }

    #[tokio::test]
    async fn a_failed_query_is_not_kept() {
        let clock = Arc::new(ManualClock::new(t0()));
        let mut store = MockSalesRanking::new();
        let mut calls = 0;
        store.expect_top_sellers().times(2).returning(move |_, _| {
            calls += 1;
            if calls == 1 {
                Err(anyhow::anyhow!("the store is down"))
            } else {
                Ok(ranked(1))
            }
        });
        let cached = CachedRanking::new(Arc::new(store), clock);
        let failed = cached.top_sellers(t0(), 5).await.map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(failed, Err("the store is down".to_owned()));
        assert_eq!(cached.top_sellers(t0(), 5).await.map(|r| r[0].sold).ok(), Some(1));
    }

    /// A ranking store whose query takes 50 ms and counts how often it runs.
    #[derive(Default)]
    struct SlowRanking {
        queries: AtomicU64,
    }

    #[async_trait]
    impl SalesRanking for SlowRanking {
        async fn top_sellers(
            &self,
            _since: DateTime<Utc>,
            _limit: usize,
        ) -> anyhow::Result<Vec<RankedProduct>> {
            let n = self.queries.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok(ranked(i64::try_from(n)?))
        }
    }

    #[tokio::test]
    async fn readers_arriving_during_a_slow_query_share_it() {
        let clock = Arc::new(ManualClock::new(t0()));
        let slow = Arc::new(SlowRanking::default());
        let cached = Arc::new(CachedRanking::new(slow.clone(), clock.clone()));
        let readers: Vec<_> = (0..50)
            .map(|_| {
                let cached = cached.clone();
                tokio::spawn(async move { cached.top_sellers(t0(), 5).await.map(|r| r[0].sold) })
            })
            .collect();
        for reader in readers {
            assert_eq!(
                reader.await.expect("task").ok(),
                Some(1),
                "every reader got the one answer"
            );
        }
        assert_eq!(slow.queries.load(Ordering::SeqCst), 1, "50 concurrent readers, one query");
        clock.advance(TimeDelta::seconds(1));
        let again = cached.top_sellers(t0(), 5).await.map(|r| r[0].sold).ok();
        assert_eq!(again, Some(2), "stale: read again");
    }
}
