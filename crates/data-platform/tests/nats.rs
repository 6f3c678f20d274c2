//! `NatsPublisher` against a real NATS server with JetStream (`MALL_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`). Each test makes its own in-memory stream on its own subject and
//! deletes it at the end. Where no NATS answers, each test says "skipped" and passes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use chrono::{DateTime, TimeDelta};
use data_platform::nats::NATS_MSG_ID;
use data_platform::{EventBody, NatsPublisher};
use domain::model::{OrderLine, Payment, PaymentCompleted};
use domain::ports::EventPublisher;
use domain::values::{Count, EventId, OrderId, PaymentId, Points, Price, ProductId, UserId};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_millis(1_000);

fn nats_url() -> String {
    std::env::var("MALL_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A stream of this test's own, on a subject of its own; `None` (after saying why) when no
/// NATS with JetStream answers.
struct TestStream {
    jetstream: jetstream::Context,
    name: String,
    subject: String,
}

impl TestStream {
    async fn create(configure: impl FnOnce(&mut stream::Config)) -> Option<Self> {
        let url = nats_url();
        let client = match tokio::time::timeout(
            Duration::from_secs(2),
            async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(1))
                .connect(url.as_str()),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                eprintln!("skipped: no NATS at {url} ({error})");
                return None;
            }
            Err(_) => {
                eprintln!("skipped: no NATS at {url} (no answer within 2 s)");
                return None;
            }
        };
        let jetstream = jetstream::new(client);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let this = Self {
            name: format!("MALL_TEST_{id}"),
            subject: format!("mall.test.{id}.payments"),
            jetstream,
        };
        let mut config = stream::Config {
            name: this.name.clone(),
            subjects: vec![this.subject.clone()],
            storage: stream::StorageType::Memory,
            ..stream::Config::default()
        };
        configure(&mut config);
        this.jetstream.create_stream(config).await.expect("the test stream is created");
        Some(this)
    }

    fn url(&self) -> String {
        format!("{}/{}", nats_url().trim_end_matches('/'), self.subject)
    }

    async fn publisher(&self) -> NatsPublisher {
        let publisher = NatsPublisher::connect(&self.url(), TIMEOUT).await.expect("a publisher");
        wait_until_connected(&publisher).await;
        publisher
    }

    /// Every message the stream holds, in order.
    async fn messages(&self) -> Vec<async_nats::jetstream::message::StreamMessage> {
        let mut stream = self.jetstream.get_stream(&self.name).await.expect("the stream");
        let last = stream.info().await.expect("stream info").state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                messages.push(message);
            }
        }
        messages
    }

    async fn delete(self) {
        self.jetstream.delete_stream(&self.name).await.expect("the test stream is deleted");
    }
}

/// The publisher connects in the background; the first publish of a test waits for it.
async fn wait_until_connected(publisher: &NatsPublisher) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while publisher.connection_state() != async_nats::connection::State::Connected {
        assert!(Instant::now() < deadline, "the publisher connects within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn event(id: &str) -> PaymentCompleted {
    let paid_at = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
    let line = |id, count, price| OrderLine {
        product_id: ProductId::new(id).expect("id"),
        count: Count::new(count).expect("count"),
        price: Price::new(price).expect("price"),
    };
    PaymentCompleted {
        event_id: EventId::new(id),
        occurred_at: paid_at + TimeDelta::milliseconds(5),
        payment: Payment {
            id: PaymentId::new(format!("pay-{id}")),
            order_id: OrderId::new("ord-1"),
            user_id: UserId::parse("alice").expect("user"),
            amount: Points::new(3_500).expect("points"),
            paid_at,
            lines: vec![line(1, 3, 1_000), line(2, 1, 500)],
        },
    }
}

#[tokio::test]
async fn a_publish_lands_in_the_stream_with_the_spec_body_and_its_msg_id() {
    let Some(stream) = TestStream::create(|_| {}).await else { return };
    let publisher = stream.publisher().await;

    publisher.publish(event("evt-1")).await.expect("acknowledged by the stream");

    let messages = stream.messages().await;
    assert_eq!(messages.len(), 1);
    let stored = &messages[0];
    assert_eq!(stored.subject.as_str(), stream.subject);
    let body: Value = serde_json::from_slice(&stored.payload).expect("JSON");
    let expected = serde_json::to_value(EventBody::from(&event("evt-1"))).expect("JSON");
    assert_eq!(body, expected, "the SPEC §3 body, unchanged");
    assert_eq!(stored.headers.get(NATS_MSG_ID).map(|v| v.as_str()), Some("evt-1"));
    stream.delete().await;
}

#[tokio::test]
async fn the_same_event_published_twice_is_stored_once() {
    let Some(stream) = TestStream::create(|_| {}).await else { return };
    let publisher = stream.publisher().await;

    publisher.publish(event("evt-1")).await.expect("first send");
    publisher.publish(event("evt-1")).await.expect("a repeat is acknowledged too");
    publisher.publish(event("evt-2")).await.expect("another event");

    let ids: Vec<_> = stream
        .messages()
        .await
        .iter()
        .map(|m| m.headers.get(NATS_MSG_ID).map(|v| v.as_str().to_owned()))
        .collect();
    assert_eq!(ids, [Some("evt-1".to_owned()), Some("evt-2".to_owned())]);
    stream.delete().await;
}

#[tokio::test]
async fn concurrent_publishes_from_many_tasks_are_each_stored() {
    let Some(stream) = TestStream::create(|_| {}).await else { return };
    let publisher = stream.publisher().await;

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let publisher = publisher.clone();
            tokio::spawn(async move { publisher.publish(event(&format!("evt-{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task ran").expect("acknowledged");
    }
    assert_eq!(stream.messages().await.len(), 50);
    stream.delete().await;
}

#[tokio::test]
async fn no_stream_on_the_subject_is_an_error() {
    let Some(stream) = TestStream::create(|_| {}).await else { return };
    let url = format!("{}/mall.test.{}.nobody", nats_url(), uuid::Uuid::new_v4().simple());
    let publisher = NatsPublisher::connect(&url, TIMEOUT).await.expect("a publisher");
    wait_until_connected(&publisher).await;

    let started = Instant::now();
    let error = publisher.publish(event("evt-1")).await.expect_err("no stream takes it");
    let message = format!("{error:#}");
    eprintln!("the error: {message}");
    assert!(message.contains("no JetStream stream"), "{message}");
    assert!(started.elapsed() < TIMEOUT, "answered at once (no responders), not a time-out");
    stream.delete().await;
}

#[tokio::test]
async fn a_stream_that_refuses_the_message_is_an_error() {
    let Some(stream) = TestStream::create(|config| config.max_message_size = 16).await else {
        return;
    };
    let publisher = stream.publisher().await;

    let error = publisher.publish(event("evt-1")).await.expect_err("too large for the stream");
    let message = format!("{error:#}");
    eprintln!("the error: {message}");
    assert!(message.contains("refused"), "{message}");
    assert!(stream.messages().await.is_empty());
    stream.delete().await;
}

#[tokio::test]
async fn no_ack_in_time_is_an_error_bounded_by_the_timeout() {
    // A plain subscriber and no stream on the subject: the message is taken, never acknowledged.
    let Some(stream) = TestStream::create(|_| {}).await else { return };
    let subject = format!("mall.test.{}.silent", uuid::Uuid::new_v4().simple());
    let listener = async_nats::connect(nats_url()).await.expect("a client");
    let _silent = listener.subscribe(subject.clone()).await.expect("subscribed");
    listener.flush().await.expect("the subscription is registered");
    let url = format!("{}/{subject}", nats_url());
    let publisher = NatsPublisher::connect(&url, TIMEOUT).await.expect("a publisher");
    wait_until_connected(&publisher).await;

    let started = Instant::now();
    let error = publisher.publish(event("evt-1")).await.expect_err("nothing acknowledges");
    let message = format!("{error:#}");
    eprintln!("the error: {message}");
    assert!(message.contains("no JetStream ack"), "{message}");
    let waited = started.elapsed();
    assert!(waited >= TIMEOUT && waited < TIMEOUT + Duration::from_millis(500), "{waited:?}");
    stream.delete().await;
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    let url = format!("nats://{}/mall.payments", port.expect("a free port"));
    let started = Instant::now();
    let publisher = NatsPublisher::connect(&url, TIMEOUT).await.expect("starting is not an error");

    let error = publisher.publish(event("evt-1")).await.expect_err("nothing listens");
    let message = format!("{error:#}");
    eprintln!("the error: {message}");
    assert!(message.contains("not connected"), "{message}");
    assert!(started.elapsed() < TIMEOUT, "within the timeout: {:?}", started.elapsed());

    // Once the client has tried, the error says why it is not connected.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let error = publisher.publish(event("evt-1")).await.expect_err("nothing listens");
        let message = format!("{error:#}");
        if message.contains("IO error") {
            eprintln!("the error: {message}");
            break;
        }
        assert!(Instant::now() < deadline, "the cause is named: {message}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP forwarder to the test NATS on a port of its own: NATS as the publisher sees it, which
/// the test can take down (every connection cut, new ones refused) and bring back.
struct Forwarder {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Forwarder {
    /// A port where nothing listens yet.
    fn down() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("address").port();
        Self { port, tasks: Arc::default() }
    }

    async fn come_up(&self) {
        let upstream = nats_url().trim_start_matches("nats://").trim_end_matches('/').to_owned();
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("the port");
        let tasks = self.tasks.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let copying = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("lock").push(copying.abort_handle());
            }
        });
        self.tasks.lock().expect("lock").push(accepting.abort_handle());
    }

    /// Cuts every connection and stops listening.
    async fn go_down(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // the sockets close
    }
}

/// Publishes `id` until the stream acknowledges it, for at most `patience`.
async fn publish_until_acknowledged(publisher: &NatsPublisher, id: &str, patience: Duration) {
    let started = Instant::now();
    while let Err(error) = publisher.publish(event(id)).await {
        assert!(started.elapsed() < patience, "not delivered after {patience:?}: {error:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{id} delivered {:?} after NATS came back", started.elapsed());
}

#[tokio::test]
async fn nats_down_at_start_or_lost_later_is_an_error_until_it_is_back() {
    let Some(stream) = TestStream::create(|_| {}).await else { return };
    let nats = Forwarder::down();
    let url = format!("nats://127.0.0.1:{}/{}", nats.port, stream.subject);
    let publisher = NatsPublisher::connect(&url, TIMEOUT).await.expect("starting is not an error");
    let error = publisher.publish(event("evt-1")).await.expect_err("down");
    assert!(format!("{error:#}").contains("not connected"), "{error:#}");

    // Down for a second, then up: the client reconnects by itself (its pause between tries
    // grows to 4 s at most).
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.come_up().await;
    publish_until_acknowledged(&publisher, "evt-1", Duration::from_secs(6)).await;

    // The connection is cut: an error within the timeout, not a hang, and no queued message.
    nats.go_down().await;
    let started = Instant::now();
    let error = publisher.publish(event("evt-2")).await.expect_err("the connection is gone");
    eprintln!("the error: {error:#}");
    assert!(started.elapsed() <= TIMEOUT + Duration::from_millis(100), "{:?}", started.elapsed());

    nats.come_up().await;
    publish_until_acknowledged(&publisher, "evt-2", Duration::from_secs(6)).await;
    let ids: Vec<_> = stream
        .messages()
        .await
        .iter()
        .map(|m| m.headers.get(NATS_MSG_ID).map(|v| v.as_str().to_owned()))
        .collect();
    assert_eq!(ids, [Some("evt-1".to_owned()), Some("evt-2".to_owned())]);
    nats.go_down().await;
    stream.delete().await;
}
