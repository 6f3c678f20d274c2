//! Background work: the expiry sweeper, the outbox relay and the outbox watch. Each stops when
//! the shutdown channel flips.

use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use domain::errors::PayError;
use domain::idempotency::Remember;
use domain::model::{PaymentPlan, PaymentReceipt};
use domain::ports::PaymentRepository;
use domain::{EventRelay, Mall, RelayReport};
use http_api::RateLimits;

use crate::ready::Heartbeat;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::{interval, MissedTickBehavior};

/// How often due forms are looked for. SPEC: stock returns within 2 s of a form's expiry.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Forms expired per store call; a sweep repeats until fewer are due.
pub const SWEEP_BATCH: usize = 500;
/// How often the relay looks for due events besides being woken by a payment: retries and
/// events committed by other instances. SPEC: an event leaves within a second of its payment.
pub const RELAY_EVERY: Duration = Duration::from_millis(500);
/// How often the backlog is logged (while events fail) and old delivered events purged.
pub const WATCH_EVERY: Duration = Duration::from_secs(30);
/// How often latency samples are folded into the metrics' histograms.
pub const METRICS_EVERY: Duration = Duration::from_secs(1);
/// Delivered events deleted per purge statement.
pub const PURGE_BATCH: usize = 1_000;

/// Expires due order forms until shutdown.
pub async fn sweep_expired_forms(mall: Mall, mut stop: watch::Receiver<bool>) {
    let mut tick = interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => sweep_once(&mall).await,
            _ = stop.changed() => break,
        }
    }
}

async fn sweep_once(mall: &Mall) {
    loop {
        match mall.expire_due_forms(SWEEP_BATCH).await {
            Ok(expired) => {
                if expired > 0 {
                    metrics::counter!("mall_forms_expired_total").increment(expired as u64);
                    tracing::info!(expired, "expired order forms and released their stock");
                }
                if expired < SWEEP_BATCH {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "expiry sweep failed; retrying");
                return;
            }
        }
    }
}

/// Relay passes that may run at the same moment on one instance: while one waits for a slow
/// send, the next claims and sends the events that became due meanwhile (claims lease their
/// events, so the two never send the same one).
pub const RELAY_PASSES: usize = 2;
/// How long a stopping relay waits for its passes to record what they sent.
pub const RELAY_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Delivers outbox events until shutdown: a pass starts at once when a payment commits on this
/// instance (`wake`), every [`RELAY_EVERY`] for retries and other instances' events, and again
/// right after a pass that delivered everything it claimed, so the relay is never idle while
/// events are due. Up to [`RELAY_PASSES`] passes overlap.
pub async fn relay_events(
    relay: EventRelay,
    wake: Arc<Notify>,
    heartbeat: Arc<Heartbeat>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = interval(RELAY_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut passes: JoinSet<Option<RelayReport>> = JoinSet::new();
    loop {
        heartbeat.beat();
        let start = tokio::select! {
            _ = tick.tick() => true,
            () = wake.notified() => true,
            Some(done) = passes.join_next() => match done {
                Ok(report) => report.is_some_and(|r: RelayReport| r.claimed > 0 && r.failed == 0),
                Err(error) => {
                    tracing::error!(%error, "a relay pass panicked");
                    false
                }
            },
            _ = stop.changed() => break,
        };
        if start && passes.len() < RELAY_PASSES {
            let relay = relay.clone();
            passes.spawn(async move { relay_pass(&relay).await });
        }
    }
    // Passes in flight get a moment to finish and record what they sent; whatever is still
    // unsent after that is sent again when its lease ends.
    let finish = async { while passes.join_next().await.is_some() {} };
    if tokio::time::timeout(RELAY_SHUTDOWN_GRACE, finish).await.is_err() {
        passes.abort_all();
    }
}

/// One pass, logged and counted; `None` when the outbox failed.
async fn relay_pass(relay: &EventRelay) -> Option<RelayReport> {
    match relay.relay_once().await {
        Ok(report) => {
            metrics::counter!("mall_events_delivered_total").increment(report.delivered as u64);
            metrics::counter!("mall_events_failed_total").increment(report.failed as u64);
            if let Some(error) = &report.last_error {
                tracing::warn!(
                    delivered = report.delivered,
                    failed = report.failed,
                    error,
                    "some payment events could not be delivered; they will be retried"
                );
            }
            Some(report)
        }
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "the outbox relay failed; retrying");
            None
        }
    }
}

/// Every [`WATCH_EVERY`]: logs the backlog while events wait or fail, purges delivered events
/// older than the retention period and idempotency keys past their replay period, and forgets
/// idle callers of the rate limiter.
pub async fn housekeeping(
    mall: Mall,
    relay: EventRelay,
    rate_limits: Option<Arc<RateLimits>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if let Some(limits) = &rate_limits {
            limits.forget_idle();
        }
        match mall.purge_idempotency_keys(PURGE_BATCH).await {
            Ok(purged) if purged > 0 => tracing::debug!(purged, "purged expired idempotency keys"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "purging keys failed"),
        }
        match relay.backlog().await {
            Ok(backlog) if backlog.failing > 0 => tracing::warn!(
                undelivered = backlog.undelivered,
                failing = backlog.failing,
                oldest = ?backlog.oldest,
                last_error = backlog.last_error.as_deref().unwrap_or(""),
                "payment events are waiting for the data platform"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot read the outbox"),
        }
        loop {
            match relay.purge(PURGE_BATCH).await {
                Ok(purged) if purged == PURGE_BATCH => continue,
                Ok(purged) => {
                    if purged > 0 {
                        tracing::info!(purged, "purged delivered payment events");
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "purging the outbox failed");
                    break;
                }
            }
        }
    }
}

/// Every [`METRICS_EVERY`]: folds the latency samples recorded since into the histograms. The
/// Prometheus recorder keeps each sample until then, so without this a server nobody scrapes
/// would grow by every request's samples (~1 MiB/s at 50k requests/s).
pub async fn metrics_upkeep(mut stop: watch::Receiver<bool>) {
    let mut tick = interval(METRICS_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        crate::metrics::handle().run_upkeep();
    }
}

/// Wakes the relay after each committed payment, so its event leaves at once instead of at
/// the next tick.
pub struct WakeRelayOnPayment {
    inner: Arc<dyn PaymentRepository>,
    wake: Arc<Notify>,
}

impl WakeRelayOnPayment {
    pub fn new(inner: Arc<dyn PaymentRepository>, wake: Arc<Notify>) -> Self {
        Self { inner, wake }
    }
}

impl std::fmt::Debug for WakeRelayOnPayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeRelayOnPayment").finish_non_exhaustive()
    }
}

#[async_trait]
impl PaymentRepository for WakeRelayOnPayment {
    async fn commit_payment(
        &self,
        plan: PaymentPlan,
        remember: Option<Remember>,
    ) -> Result<PaymentReceipt, PayError> {
        let receipt = self.inner.commit_payment(plan, remember).await?;
        self.wake.notify_one();
        Ok(receipt)
    }
}
