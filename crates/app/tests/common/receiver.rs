//! The data platform a delivery scenario runs against, behind one interface: the fake HTTP
//! platform ([`FakePlatform`]), or a NATS JetStream stream of the test's own on the local NATS
//! (`MALL_TEST_NATS_URL`, default `nats://127.0.0.1:4222`).
//!
//! On NATS, a plain subscriber on the subject (the "tap") sees every publish that reaches the
//! server — what [`Receiver::received`] returns, as the fake HTTP platform's requests — and the
//! stream holds what was acknowledged ([`Receiver::delivered`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use serde_json::Value;

use super::{closed_port, FakePlatform, Received};

/// Which publisher a scenario exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `http://`: POSTs to a fake platform.
    Http,
    /// `nats://`: a JetStream stream on the local NATS.
    Nats,
}

pub enum Receiver {
    Http {
        port: u16,
        /// `None` while down.
        platform: Option<FakePlatform>,
        /// How many requests it answers 500 before 204s.
        failures: usize,
    },
    Nats(Box<NatsPlatform>),
}

impl Receiver {
    /// A platform that is up, and refuses the first `failures` deliveries (HTTP 500; on NATS,
    /// the stream rejects the message as too large until its limit is lifted). `None`, after
    /// saying "skipped", when the adapter needs a NATS that does not answer.
    pub async fn up(adapter: Adapter, failures: usize) -> Option<Self> {
        match adapter {
            Adapter::Http => {
                let platform = FakePlatform::start(&vec![500; failures]);
                let port = platform.url.split(':').nth(2).and_then(|rest| rest.split('/').next());
                let port = port.and_then(|p| p.parse().ok()).expect("the platform's port");
                Some(Self::Http { port, platform: Some(platform), failures })
            }
            Adapter::Nats => {
                let mut nats = NatsPlatform::new().await?;
                nats.create_stream(failures > 0).await;
                nats.start_tap(failures).await;
                Some(Self::Nats(Box::new(nats)))
            }
        }
    }

    /// A platform that is down until [`Receiver::come_up`]: nothing listens on the HTTP port;
    /// on NATS, no stream takes the subject (publishes get "no responders").
    pub async fn down(adapter: Adapter) -> Option<Self> {
        match adapter {
            Adapter::Http => Some(Self::Http { port: closed_port(), platform: None, failures: 0 }),
            Adapter::Nats => NatsPlatform::new().await.map(|nats| Self::Nats(Box::new(nats))),
        }
    }

    pub async fn come_up(&mut self) {
        match self {
            Self::Http { port, platform, .. } => {
                *platform = Some(FakePlatform::start_on_port(*port, &[]));
            }
            Self::Nats(nats) => {
                nats.create_stream(false).await;
                nats.start_tap(0).await;
            }
        }
    }

    /// `MALL_DATA_PLATFORM_URL`.
    pub fn url(&self) -> String {
        match self {
            Self::Http { port, .. } => format!("http://127.0.0.1:{port}/events"),
            Self::Nats(nats) => format!("{}/{}", nats.server, nats.subject),
        }
    }

    /// Every delivery attempt that reached the platform, in order (while it is up).
    /// `idempotency_key` is the `Idempotency-Key` header over HTTP, `Nats-Msg-Id` on NATS.
    pub fn received(&self) -> Vec<Received> {
        match self {
            Self::Http { platform, .. } => platform.as_ref().map(FakePlatform::received),
            Self::Nats(nats) => Some(nats.tapped.lock().expect("lock").clone()),
        }
        .unwrap_or_default()
    }

    /// What the platform accepted and keeps: the requests answered 2xx, or the messages the
    /// stream stored (`at` is then when they were read).
    pub async fn delivered(&self) -> Vec<Received> {
        match self {
            Self::Http { failures, .. } => self.received().into_iter().skip(*failures).collect(),
            Self::Nats(nats) => nats.stored().await,
        }
    }

    /// Waits until at least `count` attempts arrived, and returns them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} attempts arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes what the test made on the shared NATS.
    pub async fn close(self) {
        if let Self::Nats(nats) = self {
            nats.delete().await;
        }
    }
}

/// A stream of the test's own on the local NATS, made when the platform comes up.
pub struct NatsPlatform {
    server: String,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    name: String,
    subject: String,
    tapped: Arc<Mutex<Vec<Received>>>,
    tap: Option<tokio::task::JoinHandle<()>>,
}

/// The stream's message size limit while it refuses: far below any event.
const REFUSING_SIZE: i32 = 16;

impl NatsPlatform {
    async fn new() -> Option<Self> {
        let server =
            std::env::var("MALL_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let server = server.trim_end_matches('/').to_owned();
        let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(1));
        let client =
            match tokio::time::timeout(Duration::from_secs(2), options.connect(server.as_str()))
                .await
            {
                Ok(Ok(client)) => client,
                Ok(Err(error)) => {
                    eprintln!("skipped: no NATS at {server} ({error})");
                    return None;
                }
                Err(_) => {
                    eprintln!("skipped: no NATS at {server} (no answer within 2 s)");
                    return None;
                }
            };
        let id = uuid::Uuid::new_v4().simple().to_string();
        Some(Self {
            server,
            jetstream: jetstream::new(client.clone()),
            client,
            name: format!("MALL_TEST_{id}"),
            subject: format!("mall.test.{id}.payments"),
            tapped: Arc::default(),
            tap: None,
        })
    }

    fn config(&self, refusing: bool) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![self.subject.clone()],
            storage: stream::StorageType::Memory,
            max_message_size: if refusing { REFUSING_SIZE } else { -1 },
            ..stream::Config::default()
        }
    }

    async fn create_stream(&self, refusing: bool) {
        self.jetstream.create_stream(self.config(refusing)).await.expect("the test stream");
    }

    /// Records every publish on the subject; after `failures` of them, lets the stream accept.
    async fn start_tap(&mut self, failures: usize) {
        let mut subscriber = self.client.subscribe(self.subject.clone()).await.expect("subscribe");
        self.client.flush().await.expect("the subscription is registered");
        let tapped = self.tapped.clone();
        let jetstream = self.jetstream.clone();
        let accepting = self.config(false);
        self.tap = Some(tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let received = Received {
                    idempotency_key: header(message.headers.as_ref(), "Nats-Msg-Id"),
                    content_type: header(message.headers.as_ref(), "Content-Type"),
                    body: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
                    at: Instant::now(),
                };
                let count = {
                    let mut tapped = tapped.lock().expect("lock");
                    tapped.push(received);
                    tapped.len()
                };
                if failures > 0 && count == failures {
                    // Let the stream refuse this one too, then lift the limit well before the
                    // relay's next attempt (half a second or more later).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    jetstream.update_stream(accepting.clone()).await.expect("the stream accepts");
                }
            }
        }));
    }

    async fn stored(&self) -> Vec<Received> {
        let Ok(mut stream) = self.jetstream.get_stream(&self.name).await else {
            return Vec::new();
        };
        let last = stream.info().await.expect("stream info").state.last_sequence;
        let mut stored = Vec::new();
        for sequence in 1..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                stored.push(Received {
                    idempotency_key: header(Some(&message.headers), "Nats-Msg-Id"),
                    content_type: header(Some(&message.headers), "Content-Type"),
                    body: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
                    at: Instant::now(),
                });
            }
        }
        stored
    }

    async fn delete(self) {
        if let Some(tap) = self.tap {
            tap.abort();
        }
        if self.jetstream.get_stream(&self.name).await.is_ok() {
            self.jetstream.delete_stream(&self.name).await.expect("the test stream is deleted");
        }
    }
}

fn header(headers: Option<&async_nats::HeaderMap>, name: &str) -> Option<String> {
    headers?.get(name).map(|value| value.as_str().to_owned())
}
