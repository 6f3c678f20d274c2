//! The outbox relay: moves payment events from the outbox to the data platform, at least once,
//! never dropping one, retrying failures with capped exponential back-off.

use std::fmt;
use std::sync::Arc;

use chrono::TimeDelta;

use crate::model::OutboxBacklog;
use crate::ports::{Clock, EventPublisher, Outbox};
use crate::values::EventId;

/// How the relay paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Events claimed per pass.
    pub batch: usize,
    /// How long a claim keeps other relays away. A pass stops starting new sends once half of
    /// it has passed, so a send that takes less than half the lease always ends inside it.
    pub lease: TimeDelta,
    /// The delay before the first retry; it doubles with each failed attempt…
    pub first_retry: TimeDelta,
    /// …up to this.
    pub max_retry: TimeDelta,
    /// How long delivered events are kept before they are purged.
    pub retention: TimeDelta,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: TimeDelta::seconds(60),
            first_retry: TimeDelta::milliseconds(500),
            max_retry: TimeDelta::seconds(60),
            retention: TimeDelta::days(7),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub claimed: usize,
    pub delivered: usize,
    pub failed: usize,
    /// The last delivery error of the pass, for the log.
    pub last_error: Option<String>,
}

/// The relay use case. Several relays (one per instance) may share one outbox.
#[derive(Clone)]
pub struct EventRelay {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    settings: RelaySettings,
}

impl fmt::Debug for EventRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRelay").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl EventRelay {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        settings: RelaySettings,
    ) -> Self {
        Self { outbox, publisher, clock, settings }
    }

    pub fn settings(&self) -> RelaySettings {
        self.settings
    }

    /// Claims the due events and tries each once: a delivered event is marked delivered, a
    /// failed one gets its next attempt time. Events left unsent when half the lease has passed
    /// become due again when the lease ends.
    ///
    /// # Errors
    /// When the outbox fails; events already claimed are retried when their lease ends.
    pub async fn relay_once(&self) -> anyhow::Result<RelayReport> {
        let claimed_at = self.clock.now();
        let stop_sending_at = claimed_at + self.settings.lease / 2;
        let entries = self
            .outbox
            .claim_due(claimed_at, claimed_at + self.settings.lease, self.settings.batch)
            .await?;
        let mut report = RelayReport { claimed: entries.len(), ..RelayReport::default() };
        for entry in entries {
            if self.clock.now() >= stop_sending_at {
                break;
            }
            let id = entry.event.event_id.clone();
            match self.publisher.publish(entry.event).await {
                Ok(()) => {
                    self.outbox.mark_delivered(id, self.clock.now()).await?;
                    report.delivered += 1;
                }
                Err(error) => {
                    let attempts = entry.attempts.saturating_add(1);
                    let retry_at = self.clock.now() + retry_delay(&self.settings, attempts, &id);
                    let error = format!("{error:#}");
                    self.outbox.mark_failed(id, retry_at, error.clone()).await?;
                    report.failed += 1;
                    report.last_error = Some(error);
                }
            }
        }
        Ok(report)
    }

    /// # Errors
    /// When the outbox fails.
    pub async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
        self.outbox.backlog().await
    }

    /// Deletes delivered events older than the retention period, up to `limit`.
    ///
    /// # Errors
    /// When the outbox fails.
    pub async fn purge(&self, limit: usize) -> anyhow::Result<usize> {
        let before = self.clock.now() - self.settings.retention;
        self.outbox.purge_delivered(before, limit).await
    }
}

/// The wait after the `attempts`-th failure: `first_retry × 2^(attempts−1)`, capped at
/// `max_retry`, of which the upper half is spread by a hash of the event id and the attempt
/// ("equal jitter"), so events that failed together do not all retry at the same instant. Pure,
/// so tests can predict it.
pub fn retry_delay(settings: &RelaySettings, attempts: u32, id: &EventId) -> TimeDelta {
    let first = settings.first_retry.num_milliseconds().max(1);
    let cap = settings.max_retry.num_milliseconds().max(first);
    let doublings = attempts.saturating_sub(1).min(32);
    let exponential = first.saturating_mul(1_i64 << doublings).min(cap);
    let half = exponential / 2;
    let spread = fnv1a(id.as_str().as_bytes(), attempts) % (half.unsigned_abs() + 1);
    TimeDelta::milliseconds(half + i64::try_from(spread).unwrap_or(0))
}

fn fnv1a(bytes: &[u8], salt: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes.iter().chain(&salt.to_le_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use anyhow::anyhow;
    use chrono::{DateTime, Utc};
    use mockall::predicate::eq;

    use super::*;
    use crate::model::{OutboxEntry, Payment, PaymentCompleted};
    use crate::ports::{MockEventPublisher, MockOutbox};
    use crate::support::ManualClock;
    use crate::values::{OrderId, PaymentId, Points, UserId};

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time")
    }

    fn entry(id: &str, attempts: u32) -> OutboxEntry {
        let payment = Payment {
            id: PaymentId::new(format!("pay-{id}")),
            order_id: OrderId::new("order"),
            user_id: UserId::parse("alice").expect("user"),
            amount: Points::new(10).expect("points"),
            paid_at: t0(),
            lines: vec![],
        };
        OutboxEntry {
            event: PaymentCompleted { event_id: EventId::new(id), occurred_at: t0(), payment },
            attempts,
        }
    }

    fn relay(outbox: MockOutbox, publisher: MockEventPublisher) -> EventRelay {
        let clock = Arc::new(ManualClock::new(t0()));
        EventRelay::new(Arc::new(outbox), Arc::new(publisher), clock, RelaySettings::default())
    }

    #[test]
    fn retry_delays_double_up_to_the_cap_with_bounded_jitter() {
        let settings = RelaySettings::default();
        let id = EventId::new("evt");
        for (attempts, nominal_ms) in [(1, 500), (2, 1_000), (3, 2_000), (8, 60_000), (40, 60_000)]
        {
            let delay = retry_delay(&settings, attempts, &id).num_milliseconds();
            assert!((nominal_ms / 2..=nominal_ms).contains(&delay), "attempt {attempts}: {delay}");
        }
        let spread: std::collections::HashSet<i64> = (0..20)
            .map(|i| retry_delay(&settings, 5, &EventId::new(format!("e{i}"))).num_milliseconds())
            .collect();
        assert!(spread.len() > 10, "events that failed together retry at different times");
        assert_eq!(retry_delay(&settings, 3, &id), retry_delay(&settings, 3, &id));
    }

    #[tokio::test]
    async fn delivered_events_are_marked_and_failed_ones_rescheduled() {
        let mut outbox = MockOutbox::new();
        outbox
            .expect_claim_due()
            .with(eq(t0()), eq(t0() + TimeDelta::seconds(60)), eq(100))
            .returning(|_, _, _| Ok(vec![entry("ok", 0), entry("bad", 2)]));
        outbox
            .expect_mark_delivered()
            .with(eq(EventId::new("ok")), eq(t0()))
            .times(1)
            .returning(|_, _| Ok(()));
        let expected_retry = t0() + retry_delay(&RelaySettings::default(), 3, &EventId::new("bad"));
        outbox
            .expect_mark_failed()
            .withf(move |id, at, error| {
                id.as_str() == "bad" && *at == expected_retry && error.contains("HTTP 500")
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().withf(|e| e.event_id.as_str() == "ok").returning(|_| Ok(()));
        publisher
            .expect_publish()
            .withf(|e| e.event_id.as_str() == "bad")
            .returning(|_| Err(anyhow!("HTTP 500")));
        let report = relay(outbox, publisher).relay_once().await.expect("a pass");
        assert_eq!((report.claimed, report.delivered, report.failed), (2, 1, 1));
        assert_eq!(report.last_error.as_deref(), Some("HTTP 500"));
    }

    #[tokio::test]
    async fn a_pass_stops_sending_when_half_the_lease_is_gone() {
        let clock = Arc::new(ManualClock::new(t0()));
        let mut outbox = MockOutbox::new();
        outbox.expect_claim_due().returning(|_, _, _| Ok(vec![entry("slow", 0), entry("late", 0)]));
        outbox.expect_mark_delivered().times(1).returning(|_, _| Ok(()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut publisher = MockEventPublisher::new();
        let (log, slow_clock) = (sent.clone(), clock.clone());
        publisher.expect_publish().returning(move |event| {
            log.lock().expect("log").push(event.event_id.to_string());
            slow_clock.advance(TimeDelta::seconds(31));
            Ok(())
        });
        let relay =
            EventRelay::new(Arc::new(outbox), Arc::new(publisher), clock, RelaySettings::default());
        let report = relay.relay_once().await.expect("a pass");
        assert_eq!(*sent.lock().expect("log"), vec!["slow".to_owned()]);
        assert_eq!((report.claimed, report.delivered), (2, 1));
    }

    #[tokio::test]
    async fn purge_keeps_the_retention_period() {
        let mut outbox = MockOutbox::new();
        outbox
            .expect_purge_delivered()
            .with(eq(t0() - TimeDelta::days(7)), eq(500))
            .returning(|_, _| Ok(3));
        let relay = relay(outbox, MockEventPublisher::new());
        assert_eq!(relay.purge(500).await.ok(), Some(3));
    }
}
