//! Outbound payment events for the data platform: the SPEC §3 wire format, and the
//! publishers that deliver it — [`HttpPublisher`] (`MALL_DATA_PLATFORM_URL=http://…`),
//! [`NatsPublisher`] (`nats://host:port/<subject>`, a JetStream stream) and
//! [`LoggingPublisher`] (the default); [`publisher_for`] picks one from the URL. Delivery is
//! driven by the domain's `EventRelay`, which reads the outbox and retries, so a publisher only
//! has to try to send one event once.

pub mod nats;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::model::PaymentCompleted;
use domain::ports::EventPublisher;
use serde::Serialize;

pub use crate::nats::NatsPublisher;

/// The publisher for `MALL_DATA_PLATFORM_URL`: `http://…` POSTs ([`HttpPublisher`]),
/// `nats://host:port/<subject>` publishes to JetStream ([`NatsPublisher`]).
///
/// # Errors
/// Any other scheme (`https://` included: this build's HTTP client has no TLS), or a URL the
/// chosen publisher refuses.
pub async fn publisher_for(
    url: &str,
    timeout: Duration,
) -> anyhow::Result<Arc<dyn EventPublisher>> {
    match url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase()).as_deref() {
        Some("http") => Ok(Arc::new(HttpPublisher::new(url, timeout)?)),
        Some("nats") => Ok(Arc::new(NatsPublisher::connect(url, timeout).await?)),
        _ => bail!(
            "MALL_DATA_PLATFORM_URL must be http://… (events are POSTed; no TLS in this build, put \
             a TLS-terminating proxy in front of an https:// platform) or \
             nats://host:port/<subject> (a JetStream stream), not {}",
            shown_url(url)
        ),
    }
}

/// `url` without its user and password, for logs and messages.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme && !url[scheme + 3..at].contains('/') => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The `type` of every event this service emits.
pub const PAYMENT_COMPLETED: &str = "payment.completed";

/// SPEC §3 body.
#[derive(Debug, Serialize)]
pub struct EventBody {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub occurred_at: String,
    pub payment: PaymentBody,
}

#[derive(Debug, Serialize)]
pub struct PaymentBody {
    pub id: String,
    pub order_id: String,
    pub user_id: String,
    pub amount: i64,
    pub paid_at: String,
    pub items: Vec<ItemBody>,
}

#[derive(Debug, Serialize)]
pub struct ItemBody {
    pub product_id: i64,
    pub count: i64,
    pub price: i64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<&PaymentCompleted> for EventBody {
    fn from(event: &PaymentCompleted) -> Self {
        let p = &event.payment;
        Self {
            event_id: event.event_id.to_string(),
            kind: PAYMENT_COMPLETED,
            occurred_at: rfc3339(event.occurred_at),
            payment: PaymentBody {
                id: p.id.to_string(),
                order_id: p.order_id.to_string(),
                user_id: p.user_id.to_string(),
                amount: p.amount.get(),
                paid_at: rfc3339(p.paid_at),
                items: p
                    .lines
                    .iter()
                    .map(|l| ItemBody {
                        product_id: l.product_id.get(),
                        count: l.count.get(),
                        price: l.price.get(),
                    })
                    .collect(),
            },
        }
    }
}

/// Writes each event, as its SPEC §3 JSON, to the log at INFO (target `data_platform`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LoggingPublisher;

#[async_trait]
impl EventPublisher for LoggingPublisher {
    async fn publish(&self, event: PaymentCompleted) -> anyhow::Result<()> {
        let body = serde_json::to_string(&EventBody::from(&event))?;
        tracing::info!(target: "data_platform", event_id = %event.event_id, body, "payment event");
        Ok(())
    }
}

/// The header that carries the `event_id`, so the receiver can drop a repeated delivery.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// POSTs each event as SPEC §3 JSON; any 2xx answer means delivered. Redirects are not
/// followed: a 3xx answer is a failed attempt, retried like any other.
#[derive(Debug, Clone)]
pub struct HttpPublisher {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The URL without its credentials, for errors (they reach logs and `/health`).
    shown: String,
}

impl HttpPublisher {
    /// # Errors
    /// When `url` is not an `http://` URL (this build has no TLS: put a TLS-terminating proxy
    /// in front of an `https://` platform), or the client cannot be built.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let url =
            reqwest::Url::parse(url).with_context(|| format!("bad data platform URL {url:?}"))?;
        if url.scheme() != "http" {
            bail!("the data platform URL must be http:// (this build has no TLS), not {url}");
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .user_agent(concat!("mall/", env!("CARGO_PKG_VERSION")))
            // A redirect is not a delivery: following it would turn the POST into a bodiless
            // GET whose 200 says nothing about the event. A 3xx is a failed attempt.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(Self { client, url, shown: shown.to_string() })
    }
}

#[async_trait]
impl EventPublisher for HttpPublisher {
    async fn publish(&self, event: PaymentCompleted) -> anyhow::Result<()> {
        let response = self
            .client
            .post(self.url.clone())
            .header(IDEMPOTENCY_KEY, event.event_id.as_str())
            .json(&EventBody::from(&event))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("POST {}: {}", self.shown, reqwest_cause(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("nowhere");
            bail!(
                "the data platform answered HTTP {} (a redirect to {location}, not followed: \
                 fix MALL_DATA_PLATFORM_URL)",
                status.as_u16()
            )
        } else {
            bail!("the data platform answered HTTP {}", status.as_u16())
        }
    }
}

/// The innermost cause of a client error ("connection refused", "operation timed out").
fn reqwest_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if error.is_timeout() {
        format!("timed out ({cause})")
    } else {
        cause.to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use domain::model::{OrderLine, Payment};
    use domain::values::{Count, EventId, OrderId, PaymentId, Points, Price, ProductId, UserId};
    use serde_json::json;

    use super::*;

    fn event() -> PaymentCompleted {
        let paid_at = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let line = |id, count, price| OrderLine {
            product_id: ProductId::new(id).expect("id"),
            count: Count::new(count).expect("count"),
            price: Price::new(price).expect("price"),
        };
        PaymentCompleted {
            event_id: EventId::new("evt-1"),
            occurred_at: paid_at + TimeDelta::milliseconds(5),
            payment: Payment {
                id: PaymentId::new("pay-1"),
                order_id: OrderId::new("ord-1"),
                user_id: UserId::parse("alice").expect("user"),
                amount: Points::new(3_500).expect("points"),
                paid_at,
                lines: vec![line(1, 3, 1_000), line(2, 1, 500)],
            },
        }
    }

    #[test]
    fn the_body_is_exactly_spec_section_3() {
        let body = serde_json::to_value(EventBody::from(&event())).expect("serializes");
        assert_eq!(
            body,
            json!({
                "event_id": "evt-1",
                "type": "payment.completed",
                "occurred_at": "2027-01-15T08:00:00.005Z",
                "payment": {
                    "id": "pay-1", "order_id": "ord-1", "user_id": "alice", "amount": 3500,
                    "paid_at": "2027-01-15T08:00:00.000Z",
                    "items": [
                        {"product_id": 1, "count": 3, "price": 1000},
                        {"product_id": 2, "count": 1, "price": 500}
                    ]
                }
            })
        );
    }

    #[tokio::test]
    async fn the_logging_publisher_always_confirms() {
        assert!(LoggingPublisher.publish(event()).await.is_ok());
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let timeout = Duration::from_secs(1);
        assert!(HttpPublisher::new("http://127.0.0.1:9000/events", timeout).is_ok());
        assert!(HttpPublisher::new("https://platform.example/events", timeout).is_err());
        assert!(HttpPublisher::new("not a url", timeout).is_err());
    }

    /// A platform behind a trailing-slash redirect: `POST /events` → `301 Location: /events/`,
    /// and `200` to anything else. Returns its URL and the request lines it saw.
    fn redirecting_platform() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let url = format!("http://{}/events", listener.local_addr().expect("address"));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        break;
                    }
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).expect("a header");
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).expect("the body");
                    log.lock().expect("log").push(request_line.trim().to_owned());
                    let answer = if request_line.starts_with("POST /events ") {
                        "HTTP/1.1 301 Moved Permanently\r\nLocation: /events/\r\n"
                    } else {
                        "HTTP/1.1 200 OK\r\n"
                    };
                    let _ =
                        stream.write_all(format!("{answer}Content-Length: 0\r\n\r\n").as_bytes());
                }
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
        let (url, seen) = redirecting_platform();
        let publisher = HttpPublisher::new(&url, Duration::from_secs(2)).expect("publisher");
        let error = publisher.publish(event()).await.expect_err("a 301 is not a delivery");
        let error = format!("{error:#}");
        assert!(error.contains("HTTP 301") && error.contains("/events/"), "{error}");
        assert_eq!(*seen.lock().expect("log"), ["POST /events HTTP/1.1"], "no GET followed");
    }

    #[tokio::test]
    async fn the_url_scheme_picks_the_publisher_and_others_are_refused_naming_both() {
        let timeout = Duration::from_secs(1);
        assert!(publisher_for("http://127.0.0.1:9000/events", timeout).await.is_ok());
        assert!(publisher_for("nats://127.0.0.1:9/mall.payments", timeout).await.is_ok());
        for url in ["https://platform.example/events", "kafka://k:9092/t", "platform:9000"] {
            let error = publisher_for(url, timeout).await.err().expect(url);
            let message = format!("{error:#}");
            assert!(message.contains("http://") && message.contains("nats://"), "{message}");
        }
        let error =
            publisher_for("nats://127.0.0.1:4222", timeout).await.err().expect("no subject");
        assert!(format!("{error:#}").contains("<subject>"), "{error:#}");
        let error = publisher_for("ftp://u:pw@host/x", timeout).await.err().expect("refused");
        assert!(!format!("{error:#}").contains("pw"), "{error:#}");
    }

    #[test]
    fn shown_urls_hide_credentials() {
        assert_eq!(shown_url("nats://u:pw@h:4222/s"), "nats://***@h:4222/s");
        assert_eq!(shown_url("nats://token@h:4222/s"), "nats://***@h:4222/s");
        assert_eq!(shown_url("http://h:80/a@b"), "http://h:80/a@b");
        assert_eq!(shown_url("http://h:80/events"), "http://h:80/events");
    }

    #[tokio::test]
    async fn an_unreachable_platform_is_an_error_naming_the_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let url = format!("http://{}/events", port.expect("a free port"));
        let publisher = HttpPublisher::new(&url, Duration::from_secs(1)).expect("publisher");
        let error = publisher.publish(event()).await.expect_err("nothing listens");
        assert!(format!("{error:#}").contains("POST"), "{error:#}");
        let with_password = url.replace("http://", "http://mall:hunter2@");
        let publisher = HttpPublisher::new(&with_password, Duration::from_secs(1)).expect("ok");
        let error = format!("{:#}", publisher.publish(event()).await.expect_err("nothing"));
        assert!(!error.contains("hunter2") && !error.contains("mall:"), "{error}");
    }
}
