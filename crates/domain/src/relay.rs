//! The outbox relay: moves payment events from the outbox to the data platform, at least once,
//! never dropping one, retrying failures with capped exponential back-off. Several events are
//! in flight at once, and their outcomes are written back in batches, so delivery keeps pace
//! with payments however long one round trip to the platform takes.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::model::{FailedAttempt, OutboxBacklog, OutboxEntry};
use crate::ports::{Clock, EventPublisher, Outbox};
use crate::values::EventId;

/// How the relay paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Events claimed per claim (one store call).
    pub batch: usize,
    /// Events being sent at the same moment, at most (`MALL_RELAY_CONCURRENCY`).
    pub concurrency: usize,
    /// While a pass still has sends in flight, it claims newly due events when at least this
    /// long has passed since its last claim (and half its sends have ended), so one slow send
    /// does not hold back events that became due meanwhile.
    pub claim_every: TimeDelta,
    /// How long a claim keeps other relays away. A pass stops starting the sends of a claim
    /// once half of its lease has passed, so a send that takes less than half the lease always
    /// ends inside it.
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
            concurrency: 32,
            claim_every: TimeDelta::milliseconds(50),
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

/// The outcomes of sends not yet written to the outbox.
#[derive(Debug, Default)]
struct Outcomes {
    delivered: Vec<EventId>,
    failed: Vec<FailedAttempt>,
}

impl Outcomes {
    fn len(&self) -> usize {
        self.delivered.len() + self.failed.len()
    }
}

impl EventRelay {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        settings: RelaySettings,
    ) -> Self {
        let settings = RelaySettings {
            batch: settings.batch.max(1),
            concurrency: settings.concurrency.max(1),
            ..settings
        };
        Self { outbox, publisher, clock, settings }
    }

    pub fn settings(&self) -> RelaySettings {
        self.settings
    }

    /// One pass: claims due events and sends each once, up to `concurrency` at a time, claiming
    /// more as sends end for as long as claims come back full (and, while sends are still in
    /// flight, every `claim_every`). A delivered event is marked delivered, a failed one gets
    /// its next attempt time; outcomes are written in batches — before each further claim and
    /// at the end of the pass. Events of a claim left unsent when half its lease has passed
    /// become due again when the lease ends. The pass ends when nothing is in flight and the
    /// last claim was not full.
    ///
    /// # Errors
    /// When the outbox fails; events already claimed are retried when their lease ends.
    pub async fn relay_once(&self) -> anyhow::Result<RelayReport> {
        let RelaySettings { batch, concurrency, .. } = self.settings;
        let refill_at = concurrency.div_ceil(2).max(1);
        let mut report = RelayReport::default();
        let mut outcomes = Outcomes::default();
        // Claimed, not yet sent, each with the moment its claim stops allowing sends.
        let mut waiting: VecDeque<(OutboxEntry, DateTime<Utc>)> = VecDeque::new();
        let mut sending = FuturesUnordered::new();
        let mut more = true;
        let mut last_claim: Option<DateTime<Utc>> = None;
        loop {
            let now = self.clock.now();
            let claim_due = more
                || (!sending.is_empty()
                    && last_claim.is_none_or(|at| now - at >= self.settings.claim_every));
            if claim_due && waiting.len() + sending.len() <= refill_at {
                self.write(&mut outcomes).await?;
                let claimed_at = self.clock.now();
                let claimed = self
                    .outbox
                    .claim_due(claimed_at, claimed_at + self.settings.lease, batch)
                    .await?;
                last_claim = Some(claimed_at);
                more = claimed.len() >= batch;
                report.claimed += claimed.len();
                let stop_sending_at = claimed_at + self.settings.lease / 2;
                for claimed in claimed {
                    match claimed {
                        Ok(entry) => waiting.push_back((entry, stop_sending_at)),
                        Err(unreadable) => {
                            let error = format!("unreadable outbox row: {}", unreadable.error);
                            let failure = self.failure(
                                unreadable.event_id,
                                unreadable.attempts,
                                error,
                                claimed_at,
                            );
                            report.failed += 1;
                            report.last_error = Some(failure.error.clone());
                            outcomes.failed.push(failure);
                        }
                    }
                }
            }
            let now = self.clock.now();
            while sending.len() < concurrency {
                let Some((entry, stop_sending_at)) = waiting.pop_front() else { break };
                if now >= stop_sending_at {
                    // Its claim is too old to send safely: it is due again when the lease ends.
                    continue;
                }
                let publisher = self.publisher.clone();
                sending.push(async move {
                    let (id, attempts) = (entry.event.event_id.clone(), entry.attempts);
                    (id, attempts, publisher.publish(entry.event).await)
                });
            }
            let Some((id, attempts, sent)) = sending.next().await else {
                if more {
                    continue;
                }
                break;
            };
            match sent {
                Ok(()) => {
                    outcomes.delivered.push(id);
                    report.delivered += 1;
                }
                Err(error) => {
                    let failure =
                        self.failure(id, attempts, format!("{error:#}"), self.clock.now());
                    report.failed += 1;
                    report.last_error = Some(failure.error.clone());
                    outcomes.failed.push(failure);
                }
            }
            if outcomes.len() >= batch {
                self.write(&mut outcomes).await?;
            }
        }
        self.write(&mut outcomes).await?;
        Ok(report)
    }

    fn failure(
        &self,
        event_id: EventId,
        attempts_before: u32,
        error: String,
        at: DateTime<Utc>,
    ) -> FailedAttempt {
        let attempts = attempts_before.saturating_add(1);
        let retry_at = at + retry_delay(&self.settings, attempts, &event_id);
        FailedAttempt { event_id, retry_at, error }
    }

    /// Writes the outcomes gathered so far: the delivered in one call, the failed in another.
    async fn write(&self, outcomes: &mut Outcomes) -> anyhow::Result<()> {
        if !outcomes.delivered.is_empty() {
            let delivered = std::mem::take(&mut outcomes.delivered);
            self.outbox.mark_delivered(delivered, self.clock.now()).await?;
        }
        if !outcomes.failed.is_empty() {
            self.outbox.mark_failed(std::mem::take(&mut outcomes.failed)).await?;
        }
        Ok(())
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
    use mockall::predicate::eq;

    use super::*;

    use crate::model::{ClaimedEvent, OutboxEntry, Payment, PaymentCompleted, UnreadableEvent};
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
            .returning(|_, _, _| Ok(vec![Ok(entry("ok", 0)), Ok(entry("bad", 2))]));
        outbox
            .expect_mark_delivered()
            .with(eq(vec![EventId::new("ok")]), eq(t0()))
            .times(1)
            .returning(|_, _| Ok(()));
        let expected_retry = t0() + retry_delay(&RelaySettings::default(), 3, &EventId::new("bad"));
        outbox
            .expect_mark_failed()
            .withf(move |failures| {
                matches!(failures.as_slice(), [f] if f.event_id.as_str() == "bad"
                    && f.retry_at == expected_retry && f.error.contains("HTTP 500"))
            })
            .times(1)
            .returning(|_| Ok(()));
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
        outbox
            .expect_claim_due()
            .returning(|_, _, _| Ok(vec![Ok(entry("slow", 0)), Ok(entry("late", 0))]));
        outbox.expect_mark_delivered().times(1).returning(|_, _| Ok(()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut publisher = MockEventPublisher::new();
        let (log, slow_clock) = (sent.clone(), clock.clone());
        publisher.expect_publish().returning(move |event| {
            log.lock().expect("log").push(event.event_id.to_string());
            slow_clock.advance(TimeDelta::seconds(31));
            Ok(())
        });
        let settings = RelaySettings { concurrency: 1, ..RelaySettings::default() };
        let relay = EventRelay::new(Arc::new(outbox), Arc::new(publisher), clock, settings);
        let report = relay.relay_once().await.expect("a pass");
        assert_eq!(*sent.lock().expect("log"), vec!["slow".to_owned()]);
        assert_eq!((report.claimed, report.delivered), (2, 1));
    }

    /// An outbox that hands out `due` events in order and records every write.
    #[derive(Default)]
    struct FakeOutbox {
        due: Mutex<VecDeque<ClaimedEvent>>,
        claims: Mutex<Vec<usize>>,
        delivered: Mutex<Vec<Vec<EventId>>>,
        failed: Mutex<Vec<Vec<FailedAttempt>>>,
    }

    impl FakeOutbox {
        fn with(events: impl IntoIterator<Item = ClaimedEvent>) -> Arc<Self> {
            let fake = Self::default();
            fake.due.lock().expect("due").extend(events);
            Arc::new(fake)
        }
    }

    #[async_trait::async_trait]
    impl Outbox for FakeOutbox {
        async fn claim_due(
            &self,
            _now: DateTime<Utc>,
            _lease_until: DateTime<Utc>,
            limit: usize,
        ) -> anyhow::Result<Vec<ClaimedEvent>> {
            let mut due = self.due.lock().expect("due");
            let claimed: Vec<_> = (0..limit).map_while(|_| due.pop_front()).collect();
            self.claims.lock().expect("claims").push(claimed.len());
            Ok(claimed)
        }
        async fn mark_delivered(
            &self,
            ids: Vec<EventId>,
            _at: DateTime<Utc>,
        ) -> anyhow::Result<()> {
            self.delivered.lock().expect("delivered").push(ids);
            Ok(())
        }
        async fn mark_failed(&self, failures: Vec<FailedAttempt>) -> anyhow::Result<()> {
            self.failed.lock().expect("failed").push(failures);
            Ok(())
        }
        async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
            Ok(OutboxBacklog::default())
        }
        async fn purge_delivered(&self, _: DateTime<Utc>, _: usize) -> anyhow::Result<usize> {
            Ok(0)
        }
    }

    /// A platform that answers only once `together` sends are waiting at the same moment:
    /// a relay that sends one at a time never gets an answer.
    struct Together(tokio::sync::Barrier);

    #[async_trait::async_trait]
    impl EventPublisher for Together {
        async fn publish(&self, _event: PaymentCompleted) -> anyhow::Result<()> {
            self.0.wait().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn sends_overlap_up_to_the_concurrency() {
        let outbox = FakeOutbox::with((0..16).map(|i| Ok(entry(&format!("e{i}"), 0))));
        let settings = RelaySettings { concurrency: 8, ..RelaySettings::default() };
        let publisher = Arc::new(Together(tokio::sync::Barrier::new(8)));
        let clock = Arc::new(ManualClock::new(t0()));
        let relay = EventRelay::new(outbox.clone(), publisher, clock, settings);
        let pass = tokio::time::timeout(std::time::Duration::from_secs(5), relay.relay_once());
        let report = pass.await.expect("8 sends were in flight together").expect("a pass");
        assert_eq!((report.claimed, report.delivered, report.failed), (16, 16, 0));
    }

    #[tokio::test]
    async fn outcomes_are_written_in_batches_and_claims_go_on_while_they_come_back_full() {
        let outbox = FakeOutbox::with((0..250).map(|i| Ok(entry(&format!("e{i}"), 0))));
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().times(250).returning(|_| Ok(()));
        let clock = Arc::new(ManualClock::new(t0()));
        let relay =
            EventRelay::new(outbox.clone(), Arc::new(publisher), clock, RelaySettings::default());
        let report = relay.relay_once().await.expect("a pass");
        assert_eq!((report.claimed, report.delivered), (250, 250));
        assert_eq!(*outbox.claims.lock().expect("claims"), [100, 100, 50]);
        let writes = outbox.delivered.lock().expect("delivered").clone();
        assert!(writes.len() <= 4, "{} writes for 250 events", writes.len());
        let mut ids: Vec<String> = writes.concat().iter().map(ToString::to_string).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 250, "each event marked once");
    }

    #[tokio::test]
    async fn an_unreadable_row_fails_alone_and_the_rows_claimed_with_it_are_delivered() {
        let broken = UnreadableEvent {
            event_id: EventId::new("broken"),
            attempts: 0,
            error: "user id \"\" is not valid".into(),
        };
        let outbox =
            FakeOutbox::with([Ok(entry("a", 0)), Err(broken), Ok(entry("b", 0))].into_iter());
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().times(2).returning(|_| Ok(()));
        let clock = Arc::new(ManualClock::new(t0()));
        let relay =
            EventRelay::new(outbox.clone(), Arc::new(publisher), clock, RelaySettings::default());
        let report = relay.relay_once().await.expect("a pass");
        assert_eq!((report.claimed, report.delivered, report.failed), (3, 2, 1));
        assert_eq!(outbox.delivered.lock().expect("delivered").concat().len(), 2);
        let failed = outbox.failed.lock().expect("failed").concat();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].event_id.as_str(), "broken");
        assert!(failed[0].error.contains("unreadable"), "{}", failed[0].error);
        assert!(failed[0].retry_at > t0(), "it is retried later, with back-off");
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
