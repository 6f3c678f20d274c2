//! The ranking's single flight: a decorator around the [`SalesRanking`] port that reuses an
//! answer for [`RANKING_FRESHNESS`] after its query started, and lets readers that arrive while
//! a query runs wait for it instead of starting their own. A burst of readers then costs the
//! store one query per period, however slow the query is. [`crate::Stores::from_one`] puts it
//! in front of every store's ranking.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::FutureExt;

use crate::model::RankedProduct;
use crate::ports::{Clock, SalesRanking};
use crate::single_flight::SingleFlight;

/// How long a computed ranking is reused: a payment shows up in the ranking within this time.
pub const RANKING_FRESHNESS: TimeDelta = TimeDelta::seconds(1);

/// What a ranking was asked for: the window's start and the size.
type Asked = (DateTime<Utc>, usize);

/// [`SalesRanking`] with single flight and a [`RANKING_FRESHNESS`] cache (see the module).
/// An answer is reused only for the same window start and size.
pub struct CachedRanking {
    inner: Arc<dyn SalesRanking>,
    clock: Arc<dyn Clock>,
    flight: SingleFlight<Asked, Vec<RankedProduct>>,
}

impl fmt::Debug for CachedRanking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedRanking").finish_non_exhaustive()
    }
}

impl CachedRanking {
    /// Reads through `inner`, timing freshness by `clock` (the shop's clock).
    pub fn new(inner: Arc<dyn SalesRanking>, clock: Arc<dyn Clock>) -> Self {
        Self { inner, clock, flight: SingleFlight::new(RANKING_FRESHNESS) }
    }
}

#[async_trait]
impl SalesRanking for CachedRanking {
    async fn top_sellers(
        &self,
        since: DateTime<Utc>,
        size: usize,
    ) -> anyhow::Result<Vec<RankedProduct>> {
        let inner = self.inner.clone();
        let query = move || async move { inner.top_sellers(since, size).await }.boxed();
        self.flight.get((since, size), self.clock.now(), query).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::fixtures::t0;
    use crate::model::Product;
    use crate::ports::MockSalesRanking;
    use crate::support::ManualClock;
    use crate::values::{Price, ProductId, ProductName, Stock};

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
