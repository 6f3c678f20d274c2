//! `mall-bench`: measures the release `mall` on this machine. For each store (in memory, and
//! MariaDB on a fresh database) it starts the server, seeds it, drives each scenario with a
//! closed-loop HTTP load, runs an exact flash sale, then does the read and mixed scenarios
//! again on a fresh server with `--scale` times the data (10× by default). Every run measures
//! the in-memory `GET /health` too, so each figure is also a ratio to the machine's HTTP
//! ceiling in the same run. `make bench-quick` / `make bench` run it; `--report` writes
//! `docs/benchmarks.md` with its raw `.json` and its `.svg` chart.

mod flash;
mod galera;
mod load;
mod platform;
mod report;
mod seed;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

use load::{drive, Load, MakeRequest};
use report::{Row, Rss};
use seed::TOKEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Store {
    Memory,
    Mariadb,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Mariadb => "mariadb",
        }
    }
}

#[derive(Debug, Clone, Parser)]
#[command(name = "mall-bench", about = "Benchmarks the release mall binary on this machine.")]
struct Options {
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connections (closed loop: each sends its next request when the last answered).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Products in the catalog (the 1× data set).
    #[arg(long, default_value_t = 1_000)]
    products: u64,
    /// Registered users (the 1× data set).
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// The larger data set: users, products and sales rows times this.
    #[arg(long, default_value_t = 10)]
    scale: u64,
    /// On MariaDB, `sales_hourly` gets one row per product for each of this many past hours
    /// (the ranking window is 3 days, 72–73 of them): products × hours rows.
    #[arg(long, default_value_t = 100)]
    sales_hours: u64,
    /// Skip the larger data set (`make bench-quick`).
    #[arg(long)]
    quick: bool,
    /// The stores to measure, comma-separated. Without memory, a bare in-memory server still
    /// measures the `GET /health` ceiling.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "memory,mariadb")]
    stores: Vec<Store>,
    /// The same as `--stores memory`.
    #[arg(long)]
    memory_only: bool,
    /// The server's `MALL_DB_POOL_SIZE`; without it, the server's default (2 × CPU cores, ≥ 4).
    #[arg(long)]
    pool_size: Option<u32>,
    /// The server's `MALL_DB_PIPELINE` (write batches and read rounds of one kind in the
    /// database at once); without it, the server's default.
    #[arg(long)]
    pipeline: Option<u8>,
    /// The data platform's answer time in the delivery scenario, in ms.
    #[arg(long, default_value_t = 5)]
    platform_ms: u64,
    /// Run only the delivery scenario (purchases with every payment sent to a data platform).
    #[arg(long)]
    delivery_only: bool,
    /// Write the results to this markdown file, with the raw results beside it (same name,
    /// .json) and the chart (.svg).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Run only the scenarios whose name contains one of these (comma-separated, e.g.
    /// `health,point,hot product`); the flash sale and the delivery row count as scenarios.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Instead of the usual run: three instances on a Galera cluster's nodes, given as their
    /// server URLs (`make cluster-up` prints them), one per node and then all on the first
    /// node, with purchases and the flash sale; then issue 12's black-box run.
    #[arg(long, value_delimiter = ',')]
    galera: Vec<String>,
}

impl Options {
    fn stores(&self) -> Vec<Store> {
        if self.memory_only {
            vec![Store::Memory]
        } else {
            let mut stores = self.stores.clone();
            stores.sort_by_key(|s| *s == Store::Mariadb);
            stores.dedup();
            stores
        }
    }

    /// Whether `--only` lets `scenario` run.
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|part| scenario.contains(part.as_str()))
    }

    fn scales(&self) -> Vec<u64> {
        if self.quick || self.scale <= 1 {
            vec![1]
        } else {
            vec![1, self.scale]
        }
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
    fn start(
        database_url: Option<&str>,
        options: &Options,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?.with_file_name("mall");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(&exe);
        command
            .env_clear()
            .env("MALL_BIND", format!("127.0.0.1:{port}"))
            .env("MALL_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        if let Some(size) = options.pool_size {
            command.env("MALL_DB_POOL_SIZE", size.to_string());
        }
        if let Some(depth) = options.pipeline {
            command.env("MALL_DB_PIPELINE", depth.to_string());
        }
        command.envs(env.iter().copied());
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

/// The scenarios a server runs: every one on the 1× data, the reads and the mixed shop on the
/// larger data.
fn scenarios(products: u64, users: u64, all: bool) -> Vec<(&'static str, Load)> {
    let spread = move |worker: u64, n: u64, modulo: u64| (worker * 7_919 + n * 104_729) % modulo;
    let one = |make: MakeRequest| Load::One(make);
    let mut list: Vec<(&'static str, Load)> = Vec::new();
    if all {
        list.push(("GET /health", one(Arc::new(|c, b, _, _| c.get(format!("{b}/health"))))));
    }
    list.push((
        "GET /product/{id}",
        one(Arc::new(move |c, b, w, n| {
            c.get(format!("{b}/product/{}", 1 + spread(w, n, products)))
        })),
    ));
    list.push((
        "GET /user/{id}/point",
        one(Arc::new(move |c, b, w, n| c.get(format!("{b}/user/u{}/point", spread(w, n, users))))),
    ));
    if all {
        list.push((
            "PATCH charge, one hot user",
            one(Arc::new(|c, b, _, _| {
                c.patch(format!("{b}/user/u0/charge")).json(&json!({"amount": 1}))
            })),
        ));
        list.push((
            "PATCH charge, many users",
            one(Arc::new(move |c, b, w, n| {
                c.patch(format!("{b}/user/u{}/charge", spread(w, n, users)))
                    .json(&json!({"amount": 1}))
            })),
        ));
        list.push((
            HOT_ORDERS,
            one(Arc::new(|c, b, w, n| {
                // Each worker is one user; alternating 1 and 2 units makes every replacement move
                // one unit on the hot row.
                c.post(format!("{b}/order/u{w}"))
                    .json(&json!([{"product_id": 1, "count": 1 + n % 2}]))
            })),
        ));
        list.push((
            "POST order, spread over products",
            one(Arc::new(move |c, b, w, n| {
                c.post(format!("{b}/order/u{w}"))
                    .json(&json!([{"product_id": 1 + spread(w, n, products), "count": 1}]))
            })),
        ));
        list.push(("purchase (order + pay), spread over products", Load::Purchase { products }));
    }
    list.push((
        "GET /product/ranked",
        one(Arc::new(|c, b, _, _| c.get(format!("{b}/product/ranked")))),
    ));
    list.push(("mixed shop", Load::Mixed { products, users }));
    list
}

/// Orders of one hot product: the scenario group commit is for, also measured without it.
const HOT_ORDERS: &str = "POST order, one hot product";

/// [`HOT_ORDERS`] on a server with group commit off (`MALL_DB_GROUP_COMMIT=off`).
const HOT_ORDERS_NAIVE: &str = "POST order, one hot product, one transaction per order (naive)";

/// The database name at the end of a MariaDB URL.
fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn drop_database(url: &str) -> anyhow::Result<()> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::MysqlConnection::establish(&store_mysql::testing::server_url())?;
    conn.batch_execute(&format!("DROP DATABASE `{}`", database_name(url)))?;
    Ok(())
}

/// One server: started on `store` with `scale` times the data, seeded, driven through its
/// scenarios (and, at 1×, the flash sale), then stopped. MariaDB runs on a fresh database that
/// is dropped afterwards.
async fn run_server(
    store: Store,
    scale: u64,
    options: &Options,
) -> anyhow::Result<(Vec<Row>, Rss)> {
    let label = format!("[{} {scale}×]", store.name());
    let (products, users) = (options.products * scale, options.users * scale);
    let url = match store {
        Store::Memory => None,
        Store::Mariadb => {
            Some(tokio::task::spawn_blocking(store_mysql::testing::fresh_database_url).await?)
        }
    };
    let server = Server::start(url.as_deref(), options, &[])?;
    let base = server.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.connections).build()?;
    let connections = options.connections as u64;
    seed_server(&client, &base, url.as_deref(), &label, products, users, options).await?;
    let mut rows = Vec::new();
    for (scenario, load) in scenarios(products, users, scale == 1) {
        let naive_too = url.is_some() && scenario == HOT_ORDERS && options.wants(HOT_ORDERS_NAIVE);
        if options.wants(scenario) {
            let outcome = drive(
                &client,
                std::slice::from_ref(&base),
                &format!("{label} {scenario}"),
                options.seconds,
                options.connections,
                &load,
            )
            .await;
            let mut note = String::new();
            let purchases = matches!(load, Load::Mixed { .. } | Load::Purchase { .. })
                .then_some(outcome.purchases);
            if let Some(purchases) = purchases {
                note = format!("{:.0} purchases/s", purchases as f64 / outcome.seconds.max(1e-9));
            }
            if outcome.sold_out > 0 {
                note.push_str(&format!(" ({} orders refused for lack of stock)", outcome.sold_out));
            }
            rows.push(Row::measured(store.name(), scale, scenario, &outcome, purchases, note));
        }
        if naive_too {
            let naive = naive_hot_orders(&client, url.as_deref(), &label, &load, options).await?;
            let naive =
                Row::measured(store.name(), scale, HOT_ORDERS_NAIVE, &naive, None, String::new());
            if let Some(row) = rows.last_mut().filter(|row| row.scenario == HOT_ORDERS) {
                let ratio = row.rate() / naive.rate().max(1e-9);
                row.note = format!("{ratio:.1}× the naive baseline (next row), same run");
                eprintln!("{label} group commit: {ratio:.1}× one transaction per order");
            }
            rows.push(naive);
        }
    }
    if scale == 1 && options.wants("flash sale") {
        eprint!("{label} flash sale: {} buyers, {} units…", flash::BUYERS, flash::UNITS);
        let sale =
            flash::run(&client, std::slice::from_ref(&base), connections, url.as_deref()).await?;
        eprintln!(" {}", sale.note);
        rows.push(Row {
            store: store.name(),
            scale,
            scenario: "flash sale: 2 000 buyers, 500 units (order + pay)",
            requests: sale.buyers,
            errors: sale.errors,
            errors_by_status: std::collections::BTreeMap::new(),
            seconds: sale.seconds,
            p50_ms: sale.p50_ms,
            p99_ms: sale.p99_ms,
            purchases: None,
            note: sale.note,
        });
    }
    let rss = Rss { store: store.name(), scale, mib: server.peak_rss_mib() };
    drop(server);
    if let Some(url) = url {
        tokio::task::spawn_blocking(move || drop_database(&url)).await??;
    }
    Ok((rows, rss))
}

/// The hot-product orders again, on a second server on the same database with group commit off
/// (each order its own transaction, as before group commit), started for this load alone.
async fn naive_hot_orders(
    client: &reqwest::Client,
    url: Option<&str>,
    label: &str,
    load: &Load,
    options: &Options,
) -> anyhow::Result<load::Outcome> {
    let naive = Server::start(url, options, &[("MALL_DB_GROUP_COMMIT", "off")])?;
    let outcome = drive(
        client,
        std::slice::from_ref(&naive.base),
        &format!("{label} {HOT_ORDERS_NAIVE}"),
        options.seconds,
        options.connections,
        load,
    )
    .await;
    Ok(outcome)
}

/// Seeds a fresh server: over the API in memory, with SQL on MariaDB.
async fn seed_server(
    client: &reqwest::Client,
    base: &str,
    url: Option<&str>,
    label: &str,
    products: u64,
    users: u64,
    options: &Options,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let connections = options.connections as u64;
    match url {
        None => {
            eprintln!("{label} seeding over the API: {products} products, {users} users…");
            seed::products_api(client, base, products, connections).await?;
            seed::users_api(client, base, "u", users, seed::BALANCE, connections).await?;
            seed::sales_api(client, base, products, users).await?;
            eprintln!("{label} seeded in {:.1} s", started.elapsed().as_secs_f64());
        }
        Some(url) => {
            let (url, label, hours) = (url.to_owned(), label.to_owned(), options.sales_hours);
            tokio::task::spawn_blocking(move || {
                seed::database(&url, &label, products, users, hours)
            })
            .await??;
        }
    }
    Ok(())
}

/// The scenario of the delivery row.
pub const DELIVERY: &str = "purchase, each payment sent to a data platform";

/// Purchases (order + pay over the catalog) on a fresh server whose payments go to a data
/// platform that answers each POST after `--platform-ms`. Measures the payment rate, how long
/// each event took from its `paid_at` to its arrival, and how long after the load the outbox
/// was empty (`/health`'s `undelivered` back to 0).
async fn run_delivery(store: Store, options: &Options) -> anyhow::Result<Row> {
    let label = format!("[{} delivery]", store.name());
    let platform = platform::Platform::start(Duration::from_millis(options.platform_ms)).await?;
    let url = match store {
        Store::Memory => None,
        Store::Mariadb => {
            Some(tokio::task::spawn_blocking(store_mysql::testing::fresh_database_url).await?)
        }
    };
    let env = [("MALL_DATA_PLATFORM_URL", platform.url.as_str())];
    let server = Server::start(url.as_deref(), options, &env)?;
    let base = server.base.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.connections).build()?;
    let (products, users) = (options.products, options.users);
    seed_server(&client, &base, url.as_deref(), &label, products, users, options).await?;
    let load = Load::Purchase { products };
    let scenario = format!("{label} {DELIVERY}");
    let outcome = drive(
        &client,
        std::slice::from_ref(&base),
        &scenario,
        options.seconds,
        options.connections,
        &load,
    )
    .await;
    let load_ended = chrono::Utc::now();
    let ended = Instant::now();
    let mut drained = None;
    while ended.elapsed() < Duration::from_secs(60) {
        let health: serde_json::Value =
            client.get(format!("{base}/health")).send().await?.json().await?;
        if health["outbox"]["undelivered"].as_u64() == Some(0) {
            drained = Some(ended.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrivals = platform.arrivals();
    let (events, posts) = platform.counts();
    let mut lags: Vec<f64> = arrivals
        .iter()
        .map(|a| (a.arrived_at - a.paid_at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3)
        .collect();
    let during = arrivals.iter().filter(|a| a.arrived_at <= load_ended).count();
    let seconds = outcome.seconds.max(1e-9);
    let (p50, p99) = (platform::quantile(&mut lags, 0.5), platform::quantile(&mut lags, 0.99));
    let max = lags.last().copied().unwrap_or(0.0);
    let drained = drained.map_or_else(|| "not within 60 s".to_owned(), |s| format!("{s:.2} s"));
    let note = format!(
        "{:.0} payments/s, {:.0} events/s arrived during the load; payment → arrival p50 \
         {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms; outbox empty {drained} after the load; \
         {events} events in {posts} POSTs; platform {} ms",
        outcome.purchases as f64 / seconds,
        during as f64 / seconds,
        options.platform_ms,
    );
    eprintln!("{label} {note}");
    let row = Row::measured(store.name(), 1, DELIVERY, &outcome, Some(outcome.purchases), note);
    drop(server);
    if let Some(url) = url {
        tokio::task::spawn_blocking(move || drop_database(&url)).await??;
    }
    Ok(row)
}

/// The ceiling alone, when the in-memory store is not measured: `GET /health` on a bare
/// in-memory server.
async fn ceiling_only(options: &Options) -> anyhow::Result<Row> {
    let server = Server::start(None, options, &[])?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.connections).build()?;
    let load = Load::One(Arc::new(|c, b, _, _| c.get(format!("{b}/health"))));
    let label = "[memory, ceiling only] GET /health";
    let outcome = drive(
        &client,
        std::slice::from_ref(&server.base),
        label,
        options.seconds,
        options.connections,
        &load,
    )
    .await;
    Ok(Row {
        store: "memory",
        scale: 1,
        scenario: "GET /health",
        requests: outcome.requests,
        errors: outcome.errors,
        errors_by_status: outcome.errors_by_status,
        seconds: outcome.seconds,
        p50_ms: outcome.p50_ms,
        p99_ms: outcome.p99_ms,
        purchases: None,
        note: "ceiling only: the in-memory store was not measured".to_owned(),
    })
}

/// What this machine is, for the report.
fn machine(stores: &[Store]) -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once([':', '=']))
            .map(|(_, v)| v.trim().trim_matches('"').to_owned())
    };
    let memory_gib = field(&read("/proc/meminfo"), "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    let mariadb = stores.contains(&Store::Mariadb).then(mariadb_version).flatten();
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    json!({
        "cores": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu": field(&read("/proc/cpuinfo"), "model name"),
        "memory_gib": memory_gib,
        "os": field(&read("/etc/os-release"), "PRETTY_NAME"),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "mariadb": mariadb,
        "commit": commit,
    })
}

fn mariadb_version() -> Option<String> {
    use diesel::sql_types::Text;
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = Text)]
        version: String,
    }
    let mut conn = diesel::MysqlConnection::establish(&store_mysql::testing::server_url()).ok()?;
    let row: Version =
        diesel::sql_query("SELECT VERSION() AS version").get_result(&mut conn).ok()?;
    Some(row.version)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Writes the markdown report, the raw JSON beside it and the SVG chart.
fn write_report(
    path: &Path,
    options: &Options,
    rows: &[Row],
    rss: &[Rss],
    header: Value,
) -> anyhow::Result<()> {
    let (json_path, svg_path) = (path.with_extension("json"), path.with_extension("svg"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let machine = &header["machine"];
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let cores = machine["cores"].as_u64().unwrap_or(0);
    let subtitle = format!(
        "{} · {cores} cores · {} connections, {} s per scenario · {}",
        text(&machine["cpu"]),
        options.connections,
        options.seconds,
        text(&header["generated_at"]),
    );
    let svg = report::chart(rows, &subtitle)?;
    std::fs::write(&svg_path, svg).with_context(|| format!("writing {}", svg_path.display()))?;
    let json = report::json(rows, rss, header.clone());
    let pretty = serde_json::to_string_pretty(&json)?;
    std::fs::write(&json_path, pretty + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;

    let scales = options.scales();
    let big = scales.iter().copied().find(|&s| s > 1);
    let (p, u, h) = (options.products, options.users, options.sales_hours);
    let n = |x: u64| report::thousands(x as f64);
    let mut data = format!(
        "- **Data, 1×:** {} products, {} users; on MariaDB also {} `sales_hourly` rows \
         (every product in each of the last {h} UTC hours, 1–97 units each; the ranking's \
         3-day window covers 72–73 of those hours).",
        n(p),
        n(u),
        n(p * h)
    );
    if let Some(s) = big {
        data.push_str(&format!(
            "\n- **Data, {s}×:** {} products, {} users, and on MariaDB {} `sales_hourly` rows, \
             on a fresh server: the reads and the mixed shop again.",
            n(p * s),
            n(u * s),
            n(p * s * h)
        ));
    } else {
        data.push_str(" The larger data set was skipped (`--quick`).");
    }
    let growth = report::growth(rows)
        .map_or_else(String::new, |g| format!("\n## How the cost grows with the data\n\n{g}\n"));
    let goals = report::goals(rows).map_or_else(String::new, |g| {
        format!(
            "\n## Against the goals on MariaDB (issue 15)\n\n{g}\nThe naive row is a second \
             server on the same database with `MALL_DB_GROUP_COMMIT=off`, measured right after \
             the group-commit row; why the figures stand where they do: \
             [performance.md](performance.md#where-the-time-goes-now).\n"
        )
    });
    let report = format!(
        "# Benchmarks\n\n\
         Measured by `make bench` (`make bench-quick` is the short run, without the larger data \
         set). This run: `{command}`, {at}, {minutes:.1} min in all, on {cpu} ({cores} cores, \
         {mem} GiB), the load generator on the same machine as the server and MariaDB {mariadb}; \
         commit {commit}.\n\n\
         ![Each scenario's req/s as a share of the in-memory GET /health, by store]({svg})\n\n\
         Raw results, every row with the machine, the command and the time: \
         [{json}]({json}). Where the time goes, what was changed for it and what stands \
         between these figures and the goals: [performance.md](performance.md). On a Galera \
         cluster (`make bench-galera`, instances on three nodes vs on one): \
         [benchmarks-galera.md](benchmarks-galera.md).\n\n\
         ## Method\n\n\
         - **Load:** closed loop, {connections} connections (each sends its next request when \
         the last answered), {seconds} s per scenario, the release `mall` with its default \
         database pool (2 × CPU cores, at least 4).\n\
         {data}\n\
         - **Seeding:** MariaDB is seeded with SQL (`INSERT … SELECT` from the Sequence \
         engine's `seq_1_to_N`) into the server's fresh, migrated database before the load; \
         the in-memory store has no way in but the API, so it is seeded over HTTP and gets no \
         `sales_hourly` rows: its ranking ranks 50 paid sales (plus what the scenarios buy).\n\
         - **Mixed shop:** each connection loops over 60 % `GET /product/{{id}}`, 10 % \
         `GET /product/ranked`, 10 % `GET /user/{{id}}/point`, 10 % `PATCH charge`, 10 % a \
         purchase (`POST /order` of 1–3 lines, then `POST /order/…/pay` with the same items) — \
         shares of operations; a purchase is two requests, both counted in req/s. Products are \
         drawn with a cubic skew, index = floor(products × u³) for uniform u: the first 1 % of \
         the catalog gets ~22 % of the draws, the first 10 % ~46 %. Point reads and charges \
         pick any user; each connection purchases as its own users, so its orders and payments \
         pair up. Stock never runs out; a code-4 refusal would not count as an error.\n\
         - **Purchase:** each connection, as its own user, orders one unit of a product drawn \
         uniformly from the catalog, then pays for it; req/s counts both requests, the note \
         counts completed purchases.\n\
         - **Delivery:** the purchase load again, on a fresh server (MariaDB) whose payments \
         go to a data platform in the bench that answers each POST with 204 after \
         `--platform-ms` (5 ms), concurrent POSTs overlapping; the relay runs with its defaults \
         (`MALL_RELAY_CONCURRENCY` 32). The note gives payments/s, events/s that arrived while \
         the load ran, payment → arrival (the platform's clock minus `payment.paid_at`: same \
         machine, same clock) at p50/p99/max over every event, and how long after the load \
         `/health` showed an empty outbox (its backlog figures are up to 1 s old, so this is \
         too). Goal: keep pace with the purchases, p99 ≤ 1 s, \
         empty ≤ 3 s after the load.\n\
         - **Naive baseline:** on MariaDB, the hot-product orders run again on a second \
         server on the same database with `MALL_DB_GROUP_COMMIT=off` (each order alone in its \
         own transaction, as before group commit); the group-commit row's note gives the \
         ratio.\n\
         - **vs ceiling:** the rate as a share of the in-memory `GET /health` in the same run: \
         the machine's HTTP ceiling with this load generator, which itself takes a large share \
         of the cores, so compare ratios rather than absolute figures across machines.\n\
         - **Flash sale:** 2 000 buyers, one product with 500 units, each orders one and pays; \
         exactly 500 must be paid and 1 500 refused with code 4. On MariaDB the database is \
         then read directly: 0 available, 0 reserved, 500 paid forms with 500 units, 500 \
         payments, no pending form holding the product, 500 units in `sales_hourly`.\n\
         - **Peak RSS:** the server's VmHWM over its whole life, seeding included (goal: \
         ≤ 64 MB).\n\n\
         ## Results\n\n{table}{goals}{growth}",
        command = text(&header["command"]),
        at = text(&header["generated_at"]),
        minutes = header["wall_seconds"].as_f64().unwrap_or(0.0) / 60.0,
        cpu = text(&machine["cpu"]),
        mem = machine["memory_gib"],
        mariadb = machine["mariadb"].as_str().unwrap_or("(not measured)"),
        commit = text(&machine["commit"]),
        svg = file_name(&svg_path),
        json = file_name(&json_path),
        connections = options.connections,
        seconds = options.seconds,
        table = report::table(rows, rss),
    );
    std::fs::write(path, report).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}, {} and {}", path.display(), json_path.display(), svg_path.display());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.users < options.connections as u64 || options.products == 0 {
        bail!("each connection orders as its own user: give at least as many --users as --connections, and some --products");
    }
    if !options.galera.is_empty() {
        return galera::run(&options.galera, &options).await;
    }
    let started = Instant::now();
    let generated_at = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let stores = options.stores();
    let mut rows = Vec::new();
    let mut rss = Vec::new();
    if !stores.contains(&Store::Memory) || options.delivery_only {
        rows.push(ceiling_only(&options).await?);
    }
    for &store in &stores {
        if !options.delivery_only {
            for scale in options.scales() {
                let (measured, peak) = run_server(store, scale, &options).await?;
                rows.extend(measured);
                rss.push(peak);
            }
        }
        // Delivery is measured where it is deployed: on MariaDB (in memory only when that is
        // the one store asked for).
        if (store == Store::Mariadb || stores == [Store::Memory]) && options.wants(DELIVERY) {
            rows.push(run_delivery(store, &options).await?);
        }
    }
    println!("{}", report::table(&rows, &rss));
    if let Some(goals) = report::goals(&rows) {
        println!("{goals}");
    }
    if let Some(growth) = report::growth(&rows) {
        println!("{growth}");
    }
    let wall = started.elapsed().as_secs_f64();
    eprintln!("mall-bench: {wall:.0} s in all");
    if let Some(path) = &options.report {
        let stores_for_machine = stores.clone();
        let header = json!({
            "generated_at": generated_at,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "wall_seconds": (wall * 10.0).round() / 10.0,
            "machine": tokio::task::spawn_blocking(move || machine(&stores_for_machine)).await?,
            "options": {
                "seconds": options.seconds,
                "connections": options.connections,
                "products": options.products,
                "users": options.users,
                "scale": options.scale,
                "sales_hours": options.sales_hours,
                "platform_ms": options.platform_ms,
                "quick": options.quick,
                "stores": stores.iter().map(|s| s.name()).collect::<Vec<_>>(),
            },
            "mixed_shop": {
                "operations": {"GET /product/{id}": 60, "GET /product/ranked": 10,
                               "GET /user/{id}/point": 10, "PATCH charge": 10,
                               "purchase (order + pay)": 10},
                "product_popularity": "index = floor(products * u^3), u uniform in [0, 1)",
            },
        });
        write_report(path, &options, &rows, &rss, header)?;
    }
    Ok(())
}
