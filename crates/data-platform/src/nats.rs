//! [`NatsPublisher`]: publishes each event to a NATS JetStream stream
//! (`MALL_DATA_PLATFORM_URL=nats://host:port/<subject>`, SPEC §3).
//!
//! - The body is the SPEC §3 JSON ([`EventBody`]), with the header `Nats-Msg-Id: <event_id>`:
//!   the stream's duplicate window (2 minutes unless the stream says otherwise) stores a
//!   repeated send once, so the relay's at-least-once retries are harmless.
//! - An event is delivered only when the stream acknowledges it (the JetStream publish ack).
//!   No stream on the subject ("no responders"), a JetStream error, no ack in time, or no
//!   connection is an error, and the relay retries.
//! - The connection is made in the background (async-nats's `retry_on_initial_connect`), so
//!   `mall` starts while NATS is down, and it reconnects by itself. While it is not connected,
//!   a publish fails at once rather than being queued in the client: a queued message would
//!   go out whenever the connection comes back, maybe after the duplicate window.
//! - The service never creates or changes the stream: the platform owns it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use async_nats::connection::State;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, publish::PublishAck};
use async_nats::{Event, HeaderMap};
use async_trait::async_trait;
use domain::model::PaymentCompleted;
use domain::ports::EventPublisher;

use crate::EventBody;

/// The header JetStream reads to drop a message it already stored within its duplicate window.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";

/// Where to publish: the parts of a `nats://[user:password@]host:port/<subject>` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsTarget {
    /// `nats://[user:password@]host:port`, what the client connects to.
    server: String,
    /// `host:port`, for messages (never the credentials).
    pub address: String,
    /// The subject every event is published on.
    pub subject: String,
}

impl std::fmt::Debug for NatsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsTarget")
            .field("address", &self.address)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsTarget {
    /// # Errors
    /// When `url` is not `nats://host[:port]/<subject>`, or the subject is not a plain NATS
    /// subject (dot-separated tokens, no wildcards, no spaces).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let form = "the NATS data platform URL must be nats://host:port/<subject>";
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| anyhow!("{form}: cannot parse {}: {e}", crate::shown_url(url)))?;
        if parsed.scheme() != "nats" {
            bail!("{form}, not {}://…", parsed.scheme());
        }
        let host = parsed.host_str().filter(|h| !h.is_empty());
        let Some(host) = host else { bail!("{form}: no host in {}", crate::shown_url(url)) };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            bail!("{form}, without ?query or #fragment");
        }
        let subject = parsed.path().trim_start_matches('/');
        if subject.is_empty() {
            bail!(
                "{form}: {} names no subject (e.g. nats://127.0.0.1:4222/mall.payments)",
                crate::shown_url(url)
            );
        }
        let valid_token = |t: &str| {
            !t.is_empty() && !t.contains(['*', '>', '/', '%']) && !t.contains(char::is_whitespace)
        };
        if !subject.split('.').all(valid_token) {
            bail!("{form}: {subject:?} is not a plain NATS subject (dot-separated tokens; no wildcards, spaces or slashes)");
        }
        let port = parsed.port().unwrap_or(4222);
        let address = format!("{host}:{port}");
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => String::new(),
            (user, None) => format!("{user}@"),
            (user, Some(password)) => format!("{user}:{password}@"),
        };
        Ok(Self {
            server: format!("nats://{credentials}{address}"),
            address,
            subject: subject.to_owned(),
        })
    }
}

/// Publishes each event to a JetStream stream; delivered means the stream acknowledged it.
/// Cheap to clone, and safe to call from many tasks at once (one connection, multiplexed).
#[derive(Debug, Clone)]
pub struct NatsPublisher {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    target: NatsTarget,
    timeout: Duration,
    /// Why the last connection attempt failed, until one succeeds.
    connect_error: Arc<Mutex<Option<String>>>,
}

impl NatsPublisher {
    /// Starts connecting to the server in the background and returns at once: NATS being down
    /// at start is not an error (publishes fail until it is reachable, and the relay retries).
    /// Each publish, the wait for its ack included, is bounded by `timeout`.
    ///
    /// # Errors
    /// When `url` is not `nats://host:port/<subject>`. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let target = NatsTarget::parse(url)?;
        let connect_error = Arc::new(Mutex::new(None));
        let noted = connect_error.clone();
        let client = async_nats::ConnectOptions::new()
            .name(concat!("mall/", env!("CARGO_PKG_VERSION")))
            .event_callback(move |event| {
                let error = match event {
                    Event::Connected => None,
                    Event::ClientError(error) => Some(error.to_string()),
                    Event::ServerError(error) => Some(format!("server error: {error}")),
                    _ => return std::future::ready(()),
                };
                *noted.lock().unwrap_or_else(PoisonError::into_inner) = error;
                std::future::ready(())
            })
            .connection_timeout(timeout.min(Duration::from_secs(2)))
            .retry_on_initial_connect()
            .connect(target.server.as_str())
            .await
            .with_context(|| format!("setting up the NATS client for {}", target.address))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(timeout);
        Ok(Self { client, jetstream, target, timeout, connect_error })
    }

    pub fn target(&self) -> &NatsTarget {
        &self.target
    }

    /// Whether the client is connected now (it connects and reconnects in the background).
    pub fn connection_state(&self) -> State {
        self.client.connection_state()
    }

    async fn publish_and_wait_for_ack(
        &self,
        event: &PaymentCompleted,
    ) -> anyhow::Result<PublishAck> {
        let body = serde_json::to_vec(&EventBody::from(event))?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MSG_ID, event.event_id.as_str());
        let sent = self
            .jetstream
            .publish_with_headers(self.target.subject.clone(), headers, body.into())
            .await
            .map_err(|e| self.explain(&e))?;
        sent.await.map_err(|e| self.explain(&e))
    }

    /// A short message for `last_error` and `/health`.
    fn explain(&self, error: &PublishError) -> anyhow::Error {
        let NatsTarget { address, subject, .. } = &self.target;
        match error.kind() {
            PublishErrorKind::StreamNotFound => anyhow!(
                "NATS {address}: no JetStream stream takes subject {subject} (no responders)"
            ),
            PublishErrorKind::TimedOut => self.timed_out(),
            PublishErrorKind::BrokenPipe => {
                anyhow!("NATS {address}: the connection broke before the ack for {subject}")
            }
            // The stream answered with an error (a limit, a storage failure, …).
            PublishErrorKind::Other => {
                let detail = std::error::Error::source(error)
                    .map_or_else(|| error.to_string(), ToString::to_string);
                anyhow!("NATS {address}: publish to {subject} refused: {detail}")
            }
            _ => anyhow!("NATS {address}: publish to {subject} failed: {error}"),
        }
    }

    fn timed_out(&self) -> anyhow::Error {
        let NatsTarget { address, subject, .. } = &self.target;
        anyhow!(
            "NATS {address}: no JetStream ack for {subject} within {} ms",
            self.timeout.as_millis()
        )
    }
}

#[async_trait]
impl EventPublisher for NatsPublisher {
    async fn publish(&self, event: PaymentCompleted) -> anyhow::Result<()> {
        let state = self.client.connection_state();
        if state != State::Connected {
            let address = &self.target.address;
            let why = self.connect_error.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let why = why.unwrap_or_else(|| state.to_string());
            bail!("NATS {address}: not connected ({why}); retrying in the background");
        }
        let ack = tokio::time::timeout(self.timeout, self.publish_and_wait_for_ack(&event))
            .await
            .map_err(|_| self.timed_out())??;
        if ack.duplicate {
            tracing::debug!(
                event_id = %event.event_id, stream = ack.stream,
                "the stream already had this event (a repeat within its duplicate window)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_gives_the_server_and_the_subject() {
        let target = NatsTarget::parse("nats://127.0.0.1:4222/mall.payments").expect("valid");
        assert_eq!(target.server, "nats://127.0.0.1:4222");
        assert_eq!(
            (target.address.as_str(), target.subject.as_str()),
            ("127.0.0.1:4222", "mall.payments")
        );
        let default_port = NatsTarget::parse("nats://nats.internal/payments").expect("valid");
        assert_eq!(default_port.address, "nats.internal:4222");
    }

    #[test]
    fn credentials_reach_the_client_but_never_the_messages() {
        let target = NatsTarget::parse("nats://mall:s3cret@nats:4222/payments").expect("valid");
        assert_eq!(target.server, "nats://mall:s3cret@nats:4222");
        assert!(!format!("{target:?}").contains("s3cret"));
        let token = NatsTarget::parse("nats://t0ken@nats:4222/payments").expect("valid");
        assert_eq!(token.server, "nats://t0ken@nats:4222");
        let error = NatsTarget::parse("nats://mall:s3cret@nats:4222").expect_err("no subject");
        assert!(!format!("{error:#}").contains("s3cret"), "{error:#}");
    }

    #[test]
    fn a_url_without_a_plain_subject_is_refused_with_the_expected_form() {
        for url in [
            "nats://127.0.0.1:4222",
            "nats://127.0.0.1:4222/",
            "nats://127.0.0.1:4222/mall.*",
            "nats://127.0.0.1:4222/mall.>",
            "nats://127.0.0.1:4222/mall..payments",
            "nats://127.0.0.1:4222/mall/payments",
            "nats://127.0.0.1:4222/mall%20payments",
            "nats://127.0.0.1:4222/payments?stream=x",
            "nats:///payments",
            "tls://127.0.0.1:4222/payments",
        ] {
            let error = NatsTarget::parse(url).expect_err(url);
            assert!(
                format!("{error:#}").contains("nats://host:port/<subject>"),
                "{url}: {error:#}"
            );
        }
    }
}
