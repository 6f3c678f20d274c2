//! A data platform for the delivery scenario: an HTTP/1.1 server on a free loopback port that
//! answers each `POST` with `204` after a fixed delay, every connection on its own task (so
//! concurrent POSTs overlap, as on a threaded server), and records when each event arrived and
//! its `payment.paid_at`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One event as it arrived (the first time, for an event sent more than once).
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub paid_at: DateTime<Utc>,
    pub arrived_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Received {
    first: HashMap<String, Arrival>,
    posts: u64,
}

/// The running platform; it stops when dropped.
#[derive(Debug)]
pub struct Platform {
    pub url: String,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Platform {
    /// Starts answering after `delay`.
    pub async fn start(delay: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the platform")?;
        let url = format!("http://{}/events", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Received::default()));
        let state = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, delay, &state).await;
                });
            }
        });
        Ok(Self { url, received, task })
    }

    /// Distinct events received so far, and POSTs in all (repeats included).
    pub fn counts(&self) -> (u64, u64) {
        let received = self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (received.first.len() as u64, received.posts)
    }

    /// Every distinct event's first arrival.
    pub fn arrivals(&self) -> Vec<Arrival> {
        let received = self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        received.first.values().copied().collect()
    }
}

/// Serves one keep-alive connection until the client closes it.
async fn serve(stream: TcpStream, delay: Duration, state: &Mutex<Received>) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            read.read_line(&mut header).await?;
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
        read.read_exact(&mut body).await?;
        let arrived_at = Utc::now();
        if let Some((id, paid_at)) = event_of(&body) {
            let mut received = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            received.posts += 1;
            received.first.entry(id).or_insert(Arrival { paid_at, arrived_at });
        }
        tokio::time::sleep(delay).await;
        write.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await?;
    }
}

fn event_of(body: &[u8]) -> Option<(String, DateTime<Utc>)> {
    let event: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = event["event_id"].as_str()?.to_owned();
    let paid_at = DateTime::parse_from_rfc3339(event["payment"]["paid_at"].as_str()?).ok()?;
    Some((id, paid_at.with_timezone(&Utc)))
}

/// The `q`-quantile (0–1) of `values`, sorted in place; 0 when empty.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[rank.min(values.len() - 1)]
}
