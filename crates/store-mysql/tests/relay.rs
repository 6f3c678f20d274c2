//! Two relays (two instances' pools) on one MariaDB database: every event is delivered, and no
//! event is ever being sent by both at the same moment.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::model::PaymentCompleted;
use domain::ports::{EventPublisher, Outbox};
use domain::support::ManualClock;
use domain::values::EventId;
use domain::{EventRelay, RelaySettings};
use store_contract::support::{one_payment, product_with, secs, t0};
use store_mysql::testing::fresh_database_url;
use store_mysql::{MysqlStore, PoolOptions};

/// Records deliveries, and every moment one event was in flight twice.
#[derive(Default)]
struct Recorder {
    in_flight: Mutex<HashSet<EventId>>,
    delivered: Mutex<HashMap<EventId, usize>>,
    overlaps: Mutex<Vec<EventId>>,
}

#[async_trait]
impl EventPublisher for Recorder {
    async fn publish(&self, event: PaymentCompleted) -> anyhow::Result<()> {
        let id = event.event_id;
        if !self.in_flight.lock().expect("lock").insert(id.clone()) {
            self.overlaps.lock().expect("lock").push(id.clone());
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.in_flight.lock().expect("lock").remove(&id);
        *self.delivered.lock().expect("lock").entry(id).or_insert(0) += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_deliver_every_event_once_and_never_concurrently() {
    let url = tokio::task::spawn_blocking(fresh_database_url).await.expect("a database");
    let connect = |url: String| async move {
        let options = PoolOptions {
            size: 4,
            checkout_timeout: Duration::from_secs(10),
            ..PoolOptions::default()
        };
        let store = tokio::task::spawn_blocking(move || MysqlStore::connect(&url, options));
        Arc::new(store.await.expect("task").expect("connect"))
    };
    let (first, second) = (connect(url.clone()).await, connect(url).await);

    let tea = product_with(&first, 10, 100).await;
    for i in 0..60 {
        one_payment(&first, &format!("buyer{i}"), tea, secs(i)).await;
    }
    let recorder = Arc::new(Recorder::default());
    let clock = Arc::new(ManualClock::new(t0() + secs(120)));
    let settings = RelaySettings { batch: 7, ..RelaySettings::default() };
    let relays = [first.clone(), second]
        .map(|store| EventRelay::new(store, recorder.clone(), clock.clone(), settings));
    let mut tasks = tokio::task::JoinSet::new();
    for relay in relays {
        tasks.spawn(async move {
            let mut delivered = 0;
            loop {
                let report = relay.relay_once().await.expect("a pass");
                if report.claimed == 0 {
                    return delivered;
                }
                delivered += report.delivered;
            }
        });
    }
    let mut per_relay = Vec::new();
    while let Some(delivered) = tasks.join_next().await {
        per_relay.push(delivered.expect("task"));
    }

    let delivered = recorder.delivered.lock().expect("lock").clone();
    assert_eq!(delivered.len(), 60, "every event delivered");
    assert!(delivered.values().all(|&times| times == 1), "each exactly once: {delivered:?}");
    assert!(recorder.overlaps.lock().expect("lock").is_empty(), "an event was sent twice at once");
    assert_eq!(per_relay.iter().sum::<usize>(), 60);
    assert!(per_relay.iter().all(|&n| n > 0), "both relays took part: {per_relay:?}");
    assert_eq!(first.backlog().await.expect("backlog").undelivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_row_fails_on_its_own_and_the_rows_claimed_with_it_are_delivered() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    let options = PoolOptions { size: 4, ..PoolOptions::default() };
    let (store, url) = store_mysql::testing::fresh_store_with_url(options).await;
    let store = Arc::new(store);
    let tea = product_with(&store, 10, 100).await;
    let mut events = Vec::new();
    for name in ["first", "broken", "last"] {
        events.push(one_payment(&store, name, tea, secs(1)).await.event.event_id);
    }
    // A payment whose user id no longer parses: its event cannot be built.
    tokio::task::spawn_blocking(move || {
        let mut conn = diesel::MysqlConnection::establish(&url).expect("connect");
        conn.batch_execute(
            "UPDATE payments SET user_id = 'not a valid id!' WHERE user_id = 'broken'",
        )
        .expect("corrupt one row");
    })
    .await
    .expect("task");

    let recorder = Arc::new(Recorder::default());
    let clock = Arc::new(ManualClock::new(t0() + secs(120)));
    let relay = EventRelay::new(store.clone(), recorder.clone(), clock, RelaySettings::default());
    let report = relay.relay_once().await.expect("one bad row does not fail the pass");
    assert_eq!((report.claimed, report.delivered, report.failed), (3, 2, 1));
    let delivered = recorder.delivered.lock().expect("lock").clone();
    assert!(delivered.contains_key(&events[0]) && delivered.contains_key(&events[2]));
    let backlog = store.backlog().await.expect("backlog");
    assert_eq!((backlog.undelivered, backlog.failing), (1, 1));
    let error = backlog.last_error.unwrap_or_default();
    assert!(error.contains("unreadable outbox row"), "{error}");
}
