//! `mall-bench`: measures the release `mall` on this machine. For each store (in memory, and
//! MariaDB on a fresh database) it starts the server, seeds a catalog and users over the API,
//! drives each scenario with a closed-loop HTTP load, and prints one table. Every run measures
//! `GET /health` too, so each figure is also a ratio to the machine's HTTP ceiling in the same
//! run. `make bench-quick` / `make bench` run it; `--report` writes `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

const TOKEN: &str = "bench-admin-token";

#[derive(Debug, Clone, Parser)]
#[command(name = "mall-bench", about = "Benchmarks the release mall binary on this machine.")]
struct Options {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connections (closed loop: each sends its next request when the last answered).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Products in the catalog.
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// Registered users.
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Skip the MariaDB runs.
    #[arg(long)]
    memory_only: bool,
    /// Write the table to this markdown file as well.
    #[arg(long)]
    report: Option<PathBuf>,
}

/// One measured scenario.
#[derive(Debug, Clone)]
struct Row {
    store: &'static str,
    scenario: &'static str,
    requests: u64,
    errors: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    note: String,
}

impl Row {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(database_url: Option<&str>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?.with_file_name("mall");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(&exe);
        command
            .env_clear()
            .env("MALL_BIND", format!("127.0.0.1:{port}"))
            .env("MALL_ADMIN_TOKEN", TOKEN)
            .env("MALL_DB_POOL_SIZE", "16")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        let child = command.spawn().with_context(|| format!("starting {}", exe.display()))?;
        let server = Self { child, base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("mall did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The server's peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

/// A request a scenario sends: built from the worker's number and a counter.
type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, &str, u64, u64) -> reqwest::RequestBuilder + Send + Sync>;

/// Runs `make` from `connections` workers for `seconds`; a non-2xx answer counts as an error.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    options: &Options,
    make: MakeRequest,
) -> (u64, u64, f64, f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..options.connections as u64 {
        let (client, base, make, errors) =
            (client.clone(), base.to_owned(), make.clone(), errors.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match make(&client, &base, worker, n).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        if !ok(status) {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(sent.elapsed().as_micros() as u32);
                n += 1;
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = workers.join_next().await {
        all.extend(latencies.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (p50, p99) = p50_p99_ms(&mut all);
    (all.len() as u64, errors.load(Ordering::Relaxed), elapsed, p50, p99)
}

/// The median and 99th percentile of latencies in microseconds, in milliseconds.
fn p50_p99_ms(latencies: &mut [u32]) -> (f64, f64) {
    latencies.sort_unstable();
    let at = |p: f64| {
        let index = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    (at(0.5), at(0.99))
}

/// The `errorcode` of an answer, or null when there was no answer or it was not JSON.
async fn errorcode(answer: reqwest::Result<reqwest::Response>) -> Value {
    match answer {
        Ok(response) => {
            response.json::<Value>().await.map_or(Value::Null, |b| b["errorcode"].clone())
        }
        Err(_) => Value::Null,
    }
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

async fn admin(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let response = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("{path}: {status} {body}");
    }
    Ok(body)
}

/// Adds the catalog and the users (each with plenty of points), `connections` at a time.
async fn seed(client: &reqwest::Client, base: &str, options: &Options) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let per = options.products.div_ceil(options.connections);
    for worker in 0..options.connections {
        let (client, base) = (client.clone(), base.to_owned());
        let products = options.products;
        tasks.spawn(async move {
            for i in worker * per..((worker + 1) * per).min(products) {
                let body = json!({"name": format!("Product {i}"), "price": 100 + (i % 50) as i64, "quantity": 1_000_000_000});
                admin(&client, &base, reqwest::Method::POST, "/product", body).await?;
            }
            anyhow::Ok(())
        });
    }
    let per = options.users.div_ceil(options.connections);
    for worker in 0..options.connections {
        let (client, base) = (client.clone(), base.to_owned());
        let users = options.users;
        tasks.spawn(async move {
            for i in worker * per..((worker + 1) * per).min(users) {
                admin(
                    &client,
                    &base,
                    reqwest::Method::POST,
                    "/user",
                    json!({"id": format!("u{i}")}),
                )
                .await?;
                let path = format!("/user/u{i}/charge");
                admin(
                    &client,
                    &base,
                    reqwest::Method::PATCH,
                    &path,
                    json!({"amount": 1_000_000_000_000_i64}),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// 2 000 buyers, one product with 500 units: each orders one and pays. Exactly 500 must be
/// paid, the rest refused with code 4, and the product must end at 0 available.
async fn flash_sale(
    client: &reqwest::Client,
    base: &str,
    options: &Options,
) -> anyhow::Result<Row> {
    let created = admin(
        client,
        base,
        reqwest::Method::POST,
        "/product",
        json!({"name": "Flash", "price": 1, "quantity": 500}),
    )
    .await?;
    let product = created["product"]["id"].as_i64().context("an id")?;
    let buyers = 2_000;
    for i in 0..buyers {
        admin(client, base, reqwest::Method::POST, "/user", json!({"id": format!("flash{i}")}))
            .await?;
        admin(
            client,
            base,
            reqwest::Method::PATCH,
            &format!("/user/flash{i}/charge"),
            json!({"amount": 10}),
        )
        .await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let (paid, sold_out, other) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.connections {
        let (client, base, next) = (client.clone(), base.to_owned(), next.clone());
        let (paid, sold_out, other) = (paid.clone(), sold_out.clone(), other.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= buyers {
                    return latencies;
                }
                let items = json!([{"product_id": product, "count": 1}]);
                let sent = Instant::now();
                let code = errorcode(
                    client.post(format!("{base}/order/flash{i}")).json(&items).send().await,
                )
                .await;
                if code == 0 {
                    let pay = client.post(format!("{base}/order/flash{i}/pay")).json(&items);
                    let paid_code = errorcode(pay.send().await).await;
                    if paid_code == 0 { &paid } else { &other }.fetch_add(1, Ordering::Relaxed);
                } else if code == 4 {
                    sold_out.fetch_add(1, Ordering::Relaxed);
                } else {
                    other.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(sent.elapsed().as_micros() as u32);
            }
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let (p50_ms, p99_ms) = p50_p99_ms(&mut all);
    let left: Value = client.get(format!("{base}/product/{product}")).send().await?.json().await?;
    let (paid, sold_out, other) = (
        paid.load(Ordering::Relaxed),
        sold_out.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    let exact =
        paid == 500 && sold_out == buyers - 500 && other == 0 && left["product"]["quantity"] == 0;
    if !exact {
        bail!("flash sale: {paid} paid, {sold_out} sold out, {other} other, {left} left — expected exactly 500 paid");
    }
    Ok(Row {
        store: "",
        scenario: "flash sale: 2 000 buyers, 500 units (order + pay)",
        requests: buyers,
        errors: other,
        seconds,
        p50_ms,
        p99_ms,
        note: format!(
            "{:.0} buyers/s; exactly 500 paid, 1 500 code 4, 0 left",
            buyers as f64 / seconds
        ),
    })
}

async fn run_store(
    store: &'static str,
    database_url: Option<&str>,
    options: &Options,
) -> anyhow::Result<(Vec<Row>, Option<f64>)> {
    let server = Server::start(database_url)?;
    let base = server.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.connections).build()?;
    eprintln!("[{store}] seeding {} products and {} users…", options.products, options.users);
    seed(&client, &base, options).await?;
    let (products, users) = (options.products as u64, options.users as u64);
    let spread = move |worker: u64, n: u64, modulo: u64| (worker * 7_919 + n * 104_729) % modulo;
    let scenarios: Vec<(&'static str, MakeRequest)> = vec![
        ("GET /health", Arc::new(|c, b, _, _| c.get(format!("{b}/health")))),
        (
            "GET /product/{id}",
            Arc::new(move |c, b, w, n| {
                c.get(format!("{b}/product/{}", 1 + spread(w, n, products)))
            }),
        ),
        (
            "GET /user/{id}/point",
            Arc::new(move |c, b, w, n| c.get(format!("{b}/user/u{}/point", spread(w, n, users)))),
        ),
        (
            "PATCH charge, one hot user",
            Arc::new(|c, b, _, _| {
                c.patch(format!("{b}/user/u0/charge")).json(&json!({"amount": 1}))
            }),
        ),
        (
            "PATCH charge, many users",
            Arc::new(move |c, b, w, n| {
                c.patch(format!("{b}/user/u{}/charge", spread(w, n, users)))
                    .json(&json!({"amount": 1}))
            }),
        ),
        (
            "POST order, one hot product",
            Arc::new(|c, b, w, n| {
                // Each worker is one user; alternating 1 and 2 units makes every replacement move
                // one unit on the hot row.
                c.post(format!("{b}/order/u{w}"))
                    .json(&json!([{"product_id": 1, "count": 1 + n % 2}]))
            }),
        ),
        (
            "POST order, spread over products",
            Arc::new(move |c, b, w, n| {
                c.post(format!("{b}/order/u{w}"))
                    .json(&json!([{"product_id": 1 + spread(w, n, products), "count": 1}]))
            }),
        ),
        ("GET /product/ranked", Arc::new(|c, b, _, _| c.get(format!("{b}/product/ranked")))),
    ];
    // Some sales, so the ranking has something to rank.
    for i in 0..50_u64 {
        let items = json!([{"product_id": 1 + i % products.min(20), "count": 1}]);
        admin(
            &client,
            &base,
            reqwest::Method::POST,
            &format!("/order/u{}", i % users),
            items.clone(),
        )
        .await?;
        admin(&client, &base, reqwest::Method::POST, &format!("/order/u{}/pay", i % users), items)
            .await?;
    }
    let mut rows = Vec::new();
    for (scenario, make) in scenarios {
        eprintln!(
            "[{store}] {scenario}: {} s at {} connections…",
            options.seconds, options.connections
        );
        let (requests, errors, seconds, p50_ms, p99_ms) =
            drive(&client, &base, options, make).await;
        rows.push(Row {
            store,
            scenario,
            requests,
            errors,
            seconds,
            p50_ms,
            p99_ms,
            note: String::new(),
        });
    }
    eprintln!("[{store}] flash sale…");
    let mut flash = flash_sale(&client, &base, options).await?;
    flash.store = store;
    rows.push(flash);
    Ok((rows, server.peak_rss_mib()))
}

fn table(rows: &[Row], rss: &[(&str, Option<f64>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| store | scenario | req/s | vs ceiling | p50 ms | p99 ms | errors | note |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---|");
    // The ceiling is the in-memory `/health`: the same HTTP stack, nothing behind it. On MariaDB
    // `/health` itself reads the database, so it is a scenario there, not a ceiling.
    let ceiling = rows
        .iter()
        .find(|r| r.store == "memory" && r.scenario.starts_with("GET /health"))
        .map_or(1.0, Row::rate);
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} % | {:.2} | {:.2} | {} | {} |",
            row.store,
            row.scenario,
            row.rate(),
            100.0 * row.rate() / ceiling,
            row.p50_ms,
            row.p99_ms,
            row.errors,
            row.note
        );
    }
    for (store, peak) in rss {
        let _ = writeln!(
            out,
            "\nPeak server RSS ({store}): {}",
            peak.map_or("n/a".to_owned(), |mib| format!("{mib:.1} MiB"))
        );
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.users < options.connections || options.products == 0 {
        bail!("each connection orders as its own user: give at least as many --users as --connections, and some --products");
    }
    let mut rows = Vec::new();
    let mut rss = Vec::new();
    let (memory, peak) = run_store("memory", None, &options).await?;
    rows.extend(memory);
    rss.push(("memory", peak));
    if !options.memory_only {
        let url = tokio::task::spawn_blocking(store_mysql::testing::fresh_database_url).await?;
        let (mysql, peak) = run_store("mariadb", Some(&url), &options).await?;
        rows.extend(mysql);
        rss.push(("mariadb", peak));
    }
    let table = table(&rows, &rss);
    println!("{table}");
    if let Some(path) = &options.report {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let report = format!(
            "# Benchmarks\n\nMeasured by `make bench` / `make bench-quick` (this run: `{command}`) on this \
             machine: {cores} cores, the load generator on the same machine as the server and MariaDB. \
             Closed loop: {connections} connections, {seconds} s per scenario, {products} products, \
             {users} users. \"vs ceiling\" is the scenario's rate as a share of the in-memory \
             `GET /health` in the same run — the machine's HTTP ceiling with this load generator, \
             which itself takes a large share of the cores, so compare ratios rather than absolute \
             figures across machines.\n\n{table}\n",
            connections = options.connections,
            seconds = options.seconds,
            products = options.products,
            users = options.users,
        );
        std::fs::write(path, report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
