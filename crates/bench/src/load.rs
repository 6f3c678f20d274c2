//! The closed-loop load generator: `connections` workers, each sending its next request when
//! the last one answered, for a fixed time, with a live progress line on stderr.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A request a single-request scenario sends: built from the worker's number and a counter.
pub type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, &str, u64, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// What each worker of a scenario does in a loop.
pub enum Load {
    /// One request, made by the closure.
    One(MakeRequest),
    /// The mixed shop: per operation, 60 % `GET /product/{id}`, 10 % `GET /product/ranked`,
    /// 10 % `GET /user/{id}/point`, 10 % `PATCH charge`, 10 % a purchase (order 1–3 lines, then
    /// pay the same items). Products are drawn with [`skewed`]; point reads and charges pick any
    /// user uniformly; a purchase is made by one of the worker's own users, so its order and its
    /// payment pair up.
    Mixed { products: u64, users: u64 },
    /// Purchases only: each worker, as its own user, orders one unit of a product drawn
    /// uniformly from the catalog and pays for it, again and again.
    Purchase { products: u64 },
}

/// What a scenario measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    /// The errors by HTTP status; 0 when no answer came.
    pub errors_by_status: BTreeMap<u16, u64>,
    /// Orders refused with code 4 (lack of stock): not errors.
    pub sold_out: u64,
    /// Purchases whose payment succeeded (mixed shop and purchase scenarios).
    pub purchases: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A small, fast, seedable generator (SplitMix64): the bench needs no `rand`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n ≥ 1; the modulo bias is negligible for these sizes).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// A product index in `0..n` with a cubic skew: `floor(n · u³)` for uniform `u`, so index `k`
/// or lower is drawn with probability `(k/n)^(1/3)`: the first 1 % of the catalog gets ~22 % of
/// the draws, the first 10 % ~46 %.
pub fn skewed(rng: &mut Rng, n: u64) -> u64 {
    let u = rng.unit();
    ((n as f64 * u * u * u) as u64).min(n.saturating_sub(1))
}

/// How one answer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    /// 409 with code 4: lack of stock.
    SoldOut,
    /// Any other answer, by status; 0 when none came.
    Failed(u16),
}

/// One worker's tally.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<u32>,
    errors: BTreeMap<u16, u64>,
    sold_out: u64,
    purchases: u64,
}

impl Tally {
    /// Sends one request and records its latency and outcome; `done` counts for the progress
    /// line.
    async fn send(&mut self, done: &AtomicU64, request: reqwest::RequestBuilder) -> Answer {
        let sent = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                if ok(status) {
                    let _ = response.bytes().await;
                    Answer::Ok
                } else if status == 409 {
                    match response.json::<Value>().await {
                        Ok(body) if body["errorcode"] == 4 => Answer::SoldOut,
                        _ => Answer::Failed(status),
                    }
                } else {
                    let _ = response.bytes().await;
                    Answer::Failed(status)
                }
            }
            Err(_) => Answer::Failed(0),
        };
        self.latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        done.fetch_add(1, Ordering::Relaxed);
        match answer {
            Answer::Ok => {}
            Answer::SoldOut => self.sold_out += 1,
            Answer::Failed(status) => *self.errors.entry(status).or_default() += 1,
        }
        answer
    }
}

pub fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Runs `load` from `connections` workers for `seconds`, showing progress as `label`.
pub async fn drive(
    client: &reqwest::Client,
    bases: &[String],
    label: &str,
    seconds: u64,
    connections: usize,
    load: &Load,
) -> Outcome {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let progress = tokio::spawn(progress(label.to_owned(), seconds, done.clone(), stopped));
    let mut workers = tokio::task::JoinSet::new();
    let connections = connections as u64;
    for worker in 0..connections {
        // With several servers (instances on a cluster's nodes), connection k talks to server
        // k mod n, as a balancer that keeps each connection on one instance.
        let base = bases[worker as usize % bases.len()].clone();
        let (client, done) = (client.clone(), done.clone());
        match load {
            Load::One(make) => {
                let make = make.clone();
                workers.spawn(async move {
                    let mut tally = Tally::default();
                    let mut n = 0;
                    while Instant::now() < deadline {
                        tally.send(&done, make(&client, &base, worker, n)).await;
                        n += 1;
                    }
                    tally
                });
            }
            &Load::Purchase { products } => {
                workers.spawn(async move {
                    let mut tally = Tally::default();
                    let mut rng = Rng::new(worker + 1);
                    while Instant::now() < deadline {
                        let items = json!([{"product_id": 1 + rng.below(products), "count": 1}]);
                        let order = client.post(format!("{base}/order/u{worker}")).json(&items);
                        if tally.send(&done, order).await == Answer::Ok {
                            let pay = client.post(format!("{base}/order/u{worker}/pay"));
                            if tally.send(&done, pay.json(&items)).await == Answer::Ok {
                                tally.purchases += 1;
                            }
                        }
                    }
                    tally
                });
            }
            &Load::Mixed { products, users } => {
                workers.spawn(async move {
                    let mut tally = Tally::default();
                    let mut rng = Rng::new(worker + 1);
                    let shop = Shop {
                        worker,
                        connections,
                        own_users: (users / connections).max(1),
                        products,
                        users,
                    };
                    while Instant::now() < deadline {
                        shop.step(&mut tally, &done, &mut rng, &client, &base).await;
                    }
                    tally
                });
            }
        }
    }
    let mut all = Vec::new();
    let mut outcome = Outcome::default();
    while let Some(tally) = workers.join_next().await {
        let tally = tally.unwrap_or_default();
        all.extend(tally.latencies);
        for (status, count) in tally.errors {
            outcome.errors += count;
            *outcome.errors_by_status.entry(status).or_default() += count;
        }
        outcome.sold_out += tally.sold_out;
        outcome.purchases += tally.purchases;
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = progress.await;
    outcome.requests = all.len() as u64;
    (outcome.p50_ms, outcome.p99_ms) = p50_p99_ms(&mut all);
    status(&format!(
        "{label}  {:.1} s  {} req  {:.0} req/s  p99 {:.1} ms  {} errors\n",
        outcome.seconds,
        outcome.requests,
        outcome.requests as f64 / outcome.seconds.max(1e-9),
        outcome.p99_ms,
        outcome.errors
    ));
    outcome
}

/// One worker of the mixed shop.
#[derive(Debug, Clone, Copy)]
struct Shop {
    worker: u64,
    connections: u64,
    /// How many users the worker purchases as.
    own_users: u64,
    products: u64,
    users: u64,
}

impl Shop {
    /// One operation.
    async fn step(
        self,
        tally: &mut Tally,
        done: &AtomicU64,
        rng: &mut Rng,
        client: &reqwest::Client,
        base: &str,
    ) {
        let Self { worker, connections, own_users, products, users } = self;
        match rng.below(100) {
            0..=59 => {
                let id = 1 + skewed(rng, products);
                tally.send(done, client.get(format!("{base}/product/{id}"))).await;
            }
            60..=69 => {
                tally.send(done, client.get(format!("{base}/product/ranked"))).await;
            }
            70..=79 => {
                let user = rng.below(users);
                tally.send(done, client.get(format!("{base}/user/u{user}/point"))).await;
            }
            80..=89 => {
                let user = rng.below(users);
                let charge = client.patch(format!("{base}/user/u{user}/charge"));
                tally.send(done, charge.json(&json!({"amount": 1 + rng.below(1_000)}))).await;
            }
            _ => {
                // Users `worker`, `worker + connections`, …: nobody else orders for them.
                let user = worker + connections * rng.below(own_users);
                let lines = (1 + rng.below(3)).min(products);
                let mut ids: Vec<u64> = Vec::with_capacity(3);
                while (ids.len() as u64) < lines {
                    let id = 1 + skewed(rng, products);
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                let items: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"product_id": id, "count": 1 + rng.below(2)}))
                    .collect();
                let order = client.post(format!("{base}/order/u{user}")).json(&items);
                if tally.send(done, order).await == Answer::Ok {
                    let pay = client.post(format!("{base}/order/u{user}/pay")).json(&items);
                    if tally.send(done, pay).await == Answer::Ok {
                        tally.purchases += 1;
                    }
                }
            }
        }
    }
}

/// Rewrites one stderr line every half second until `stopped`: the label, the time, the
/// requests so far and the rate over the last half second.
async fn progress(
    label: String,
    seconds: u64,
    done: Arc<AtomicU64>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.tick().await;
    let (mut last_n, mut last_t) = (0, started);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stopped => return,
        }
        let now = Instant::now();
        let n = done.load(Ordering::Relaxed);
        let rate = (n - last_n) as f64 / now.duration_since(last_t).as_secs_f64().max(1e-9);
        (last_n, last_t) = (n, now);
        status(&format!(
            "{label}  {:.1}/{seconds} s  {n} req  {rate:.0} req/s",
            now.duration_since(started).as_secs_f64()
        ));
    }
}

/// Rewrites the current stderr line with `text` (which may end the line with a newline).
pub fn status(text: &str) {
    let mut err = std::io::stderr().lock();
    // On a terminal, also clear what a longer earlier line left.
    let clear = if err.is_terminal() { "\x1b[K" } else { "" };
    let (line, newline) = text.strip_suffix('\n').map_or((text, ""), |line| (line, "\n"));
    let _ = write!(err, "\r{line}{clear}{newline}");
    let _ = err.flush();
}

/// The median and 99th percentile of latencies in microseconds, in milliseconds.
pub fn p50_p99_ms(latencies: &mut [u32]) -> (f64, f64) {
    latencies.sort_unstable();
    let at = |p: f64| {
        let index = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    (at(0.5), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cubic_skew_favours_the_first_products() {
        let mut rng = Rng::new(7);
        let n = 1_000;
        let draws = 100_000;
        let mut first_percent = 0;
        for _ in 0..draws {
            let index = skewed(&mut rng, n);
            assert!(index < n);
            if index < n / 100 {
                first_percent += 1;
            }
        }
        // (1/100)^(1/3) ≈ 0.215
        let share = f64::from(first_percent) / f64::from(draws);
        assert!((0.20..0.23).contains(&share), "{share}");
    }

    #[test]
    fn percentiles_of_an_empty_run_are_zero() {
        assert_eq!(p50_p99_ms(&mut []), (0.0, 0.0));
        assert_eq!(p50_p99_ms(&mut [3000, 1000, 2000]), (2.0, 3.0));
    }
}
