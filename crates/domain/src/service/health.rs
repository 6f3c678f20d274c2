//! `/health` under a burst of callers. Liveness must be the cheapest call, yet on a database
//! each report took a check and two backlog queries. Here:
//!
//! - the **check** ("the store answers") runs for every report, but callers that arrive while
//!   one is in flight share it (single flight): a burst costs the store one check per round
//!   trip, however many callers wait on it. A caller joins the check in flight however long
//!   it has run, so a store that stops answering is seen by the next check that starts after
//!   the one in flight ends;
//! - the **outbox backlog** figures are reused for up to [`BACKLOG_FRESHNESS`] after their
//!   query started, and callers that arrive while that query runs wait for it: at most one
//!   backlog query per second per instance.
//!
//! Failures are never kept: the next caller asks the store again.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::{BoxFuture, FutureExt};

use crate::model::OutboxBacklog;
use crate::ports::{HealthProbe, Outbox};
use crate::single_flight::SingleFlight;

/// How long the outbox backlog figures of `/health` are reused after their query started.
pub const BACKLOG_FRESHNESS: TimeDelta = TimeDelta::seconds(1);

/// The health report's store calls, shared by concurrent callers.
pub(crate) struct HealthCache {
    check: SingleFlight<(), ()>,
    backlog: SingleFlight<(), OutboxBacklog>,
}

impl Default for HealthCache {
    fn default() -> Self {
        let check = SingleFlight::new(TimeDelta::zero());
        Self { check, backlog: SingleFlight::new(BACKLOG_FRESHNESS) }
    }
}

impl std::fmt::Debug for HealthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCache").finish_non_exhaustive()
    }
}

impl HealthCache {
    /// The backlog figures of a report at `now`, once `probe` answers: the check (shared with
    /// the one in flight), then the backlog figures (see [`HealthCache::backlog`]).
    ///
    /// # Errors
    /// When the check or the backlog query fails.
    pub(crate) async fn report(
        &self,
        probe: Arc<dyn HealthProbe>,
        outbox: Arc<dyn Outbox>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<OutboxBacklog> {
        self.check(now, || async move { probe.check().await }.boxed()).await?;
        self.backlog(now, || async move { outbox.backlog().await }.boxed()).await
    }

    /// The check in flight, or one `start` makes now.
    pub(crate) async fn check(
        &self,
        now: DateTime<Utc>,
        start: impl FnOnce() -> BoxFuture<'static, anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        self.check.get((), now, start).await
    }

    /// Backlog figures from a query that started at most [`BACKLOG_FRESHNESS`] before `now`
    /// (kept, or still running), or from one `start` makes now.
    pub(crate) async fn backlog(
        &self,
        now: DateTime<Utc>,
        start: impl FnOnce() -> BoxFuture<'static, anyhow::Result<OutboxBacklog>>,
    ) -> anyhow::Result<OutboxBacklog> {
        self.backlog.get((), now, start).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures_util::future::FutureExt;

    use async_trait::async_trait;
    use chrono::TimeZone;
    use futures_util::future::join_all;
    use tokio::sync::Notify;

    use super::*;
    use crate::model::{ClaimedEvent, FailedAttempt};
    use crate::ports::{HealthProbe, Outbox};
    use crate::values::EventId;

    /// Counts its calls; each waits for `gate` (when set) so that callers overlap, and reports
    /// as many undelivered events as it has been called.
    #[derive(Default)]
    struct Counting {
        checks: AtomicUsize,
        backlogs: AtomicUsize,
        gate: Option<Arc<Notify>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl Counting {
        async fn wait(&self) {
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
        }
    }

    #[async_trait]
    impl HealthProbe for Counting {
        async fn check(&self) -> anyhow::Result<()> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            self.wait().await;
            if self.down.load(Ordering::SeqCst) {
                anyhow::bail!("the store is down");
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Outbox for Counting {
        async fn claim_due(
            &self,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
            _: usize,
        ) -> anyhow::Result<Vec<ClaimedEvent>> {
            Ok(Vec::new())
        }

        async fn mark_delivered(&self, _: Vec<EventId>, _: DateTime<Utc>) -> anyhow::Result<()> {
            Ok(())
        }

        async fn mark_failed(&self, _: Vec<FailedAttempt>) -> anyhow::Result<()> {
            Ok(())
        }

        async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
            let n = self.backlogs.fetch_add(1, Ordering::SeqCst) + 1;
            self.wait().await;
            Ok(OutboxBacklog { undelivered: n as u64, ..OutboxBacklog::default() })
        }

        async fn purge_delivered(&self, _: DateTime<Utc>, _: usize) -> anyhow::Result<usize> {
            Ok(0)
        }
    }

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::milliseconds(ms)
    }

    /// The undelivered count of [`HealthCache::report`] with `store` in both roles.
    async fn report(
        cache: &HealthCache,
        store: &Arc<Counting>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        Ok(cache.report(store.clone(), store.clone(), now).await?.undelivered)
    }

    #[tokio::test]
    async fn a_burst_of_reports_shares_one_check_and_one_backlog_query() {
        let gate = Arc::new(Notify::new());
        let store = Arc::new(Counting { gate: Some(gate.clone()), ..Counting::default() });
        let cache = HealthCache::default();
        let burst = join_all((0..50).map(|_| report(&cache, &store, t(0))));
        let open = async {
            // Both calls wait at the gate while every caller arrives; then let them through.
            for _ in 0..20 {
                tokio::task::yield_now().await;
                gate.notify_waiters();
            }
        };
        let (answers, ()) = tokio::join!(burst, open);
        for answer in answers {
            assert_eq!(answer.expect("healthy"), 1);
        }
        assert_eq!(store.checks.load(Ordering::SeqCst), 1, "one check for 50 callers");
        assert_eq!(store.backlogs.load(Ordering::SeqCst), 1, "one backlog query for 50 callers");
    }

    #[tokio::test]
    async fn backlog_figures_are_at_most_a_second_old_and_the_check_is_never_kept() {
        let store = Arc::new(Counting::default());
        let cache = HealthCache::default();
        assert_eq!(report(&cache, &store, t(0)).await.expect("healthy"), 1);
        assert_eq!(report(&cache, &store, t(999)).await.expect("healthy"), 1, "reused");
        assert_eq!(store.backlogs.load(Ordering::SeqCst), 1);
        assert_eq!(store.checks.load(Ordering::SeqCst), 2, "every report checks the store");
        assert_eq!(report(&cache, &store, t(1_000)).await.expect("healthy"), 2, "a second old");
        assert_eq!(store.backlogs.load(Ordering::SeqCst), 2);

        store.down.store(true, Ordering::SeqCst);
        let down = report(&cache, &store, t(1_100)).await.expect_err("the check fails at once");
        assert!(format!("{down:#}").contains("down"), "{down:#}");
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(report(&cache, &store, t(1_200)).await.expect("up again"), 2);
    }

    #[tokio::test]
    async fn a_failed_backlog_query_is_not_kept() {
        struct Flaky(AtomicUsize);
        let calls = Arc::new(Flaky(AtomicUsize::new(0)));
        let cache = HealthCache::default();
        let call = |calls: Arc<Flaky>| {
            move || {
                async move {
                    match calls.0.fetch_add(1, Ordering::SeqCst) {
                        0 => Err(anyhow::anyhow!("lost the connection")),
                        n => {
                            Ok(OutboxBacklog { undelivered: n as u64, ..OutboxBacklog::default() })
                        }
                    }
                }
                .boxed()
            }
        };
        assert!(cache.backlog(t(0), call(calls.clone())).await.is_err());
        let figures = cache.backlog(t(10), call(calls.clone())).await.expect("asked again");
        assert_eq!(figures.undelivered, 1);
        assert_eq!(cache.backlog(t(20), call(calls.clone())).await.expect("kept").undelivered, 1);
    }
}
