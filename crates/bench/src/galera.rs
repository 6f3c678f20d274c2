//! `mall-bench --galera URL1,URL2,URL3`: three `mall` instances on a Galera cluster
//! (`make cluster-up`), first one instance per node, then all three on the first node, each
//! with the purchases scenario (connection k on instance k mod 3) and the flash sale (every
//! call on a random instance). Then, with an instance per node, the black-box run of issue 12:
//! 2 000 buyers for 500 units (order, then pay, each call on a random instance), 300
//! reservations left to expire, one form paid on every instance at once, and every payment's
//! event delivered to a data platform; all checked over the API and in the database.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, MysqlConnection, QueryableByName, RunQueryDsl};
use serde_json::{json, Value};

use crate::load::{drive, Load};
use crate::platform::Platform;
use crate::{flash, seed, Options, Server};

/// Forms of the black-box run live this long, so the 300 unpaid ones expire within the run.
const TTL_SECS: u64 = 8;
const RESERVERS: u64 = 300;

fn fresh_database(nodes: &[String]) -> anyhow::Result<Vec<String>> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let name = format!("mall_bench_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let mut conn = MysqlConnection::establish(&nodes[0])
        .with_context(|| format!("connecting to {}", nodes[0]))?;
    conn.batch_execute(&format!("CREATE DATABASE `{name}`"))?;
    Ok(nodes.iter().map(|node| format!("{node}/{name}")).collect())
}

fn drop_database(url: &str) {
    if let Some((server, name)) = url.rsplit_once('/') {
        if let Ok(mut conn) = MysqlConnection::establish(server) {
            let _ = conn.batch_execute(&format!("DROP DATABASE `{name}`"));
        }
    }
}

struct Instances {
    /// Kept to stop the servers when dropped.
    _servers: Vec<Server>,
    bases: Vec<String>,
}

/// Starts one instance per URL; the first migrates, the others wait for it (the migration
/// lock is a row: it holds across nodes).
fn start(urls: &[String], options: &Options, env: &[(&str, &str)]) -> anyhow::Result<Instances> {
    let servers: Vec<Server> = urls
        .iter()
        .map(|url| Server::start(Some(url), options, env))
        .collect::<anyhow::Result<_>>()?;
    let bases = servers.iter().map(|s| s.base.clone()).collect();
    Ok(Instances { _servers: servers, bases })
}

/// The purchases scenario and the flash sale with instances as `urls` place them.
async fn layout(
    client: &reqwest::Client,
    nodes: &[String],
    on_one_node: bool,
    options: &Options,
) -> anyhow::Result<String> {
    let urls = tokio::task::spawn_blocking({
        let nodes = nodes.to_vec();
        move || fresh_database(&nodes)
    })
    .await??;
    let placed: Vec<String> =
        if on_one_node { vec![urls[0].clone(); 3] } else { urls.iter().take(3).cloned().collect() };
    let label = if on_one_node { "3 instances on node 1" } else { "1 instance per node" };
    let instances = start(&placed, options, &[])?;
    let (products, users) = (options.products, options.users);
    let (url, hours, tag) = (urls[0].clone(), options.sales_hours, label.to_owned());
    tokio::task::spawn_blocking(move || seed::database(&url, &tag, products, users, hours))
        .await??;
    let load = Load::Purchase { products };
    let outcome = drive(
        client,
        &instances.bases,
        &format!("[galera: {label}] purchases"),
        options.seconds,
        options.connections,
        &load,
    )
    .await;
    let purchases = outcome.purchases as f64 / outcome.seconds.max(1e-9);
    let sale =
        flash::run(client, &instances.bases, options.connections as u64, Some(&urls[0])).await;
    drop(instances);
    let row = match sale {
        Ok(sale) => format!(
            "| {label} | {purchases:.0} purchases/s ({:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, {} errors) | {:.0} buyers/s, p50 {:.1} ms, p99 {:.1} ms, {} errors: {} |",
            outcome.requests as f64 / outcome.seconds.max(1e-9),
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.errors,
            flash::BUYERS as f64 / sale.seconds.max(1e-9),
            sale.p50_ms,
            sale.p99_ms,
            sale.errors,
            sale.note,
        ),
        Err(error) => format!(
            "| {label} | {purchases:.0} purchases/s (p99 {:.1} ms, {} errors) | FAILED: {error:#} |",
            outcome.p99_ms, outcome.errors
        ),
    };
    let url = urls[0].clone();
    tokio::task::spawn_blocking(move || drop_database(&url)).await?;
    Ok(row)
}

async fn call(request: reqwest::RequestBuilder) -> Value {
    match request.send().await {
        Ok(response) => response.json::<Value>().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

#[derive(QueryableByName, Debug)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn number(c: &mut MysqlConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<Number>(c).with_context(|| sql.to_owned())?.n)
}

/// Issue 12's black-box run, with an instance per node. Returns its summary.
#[allow(clippy::too_many_lines)]
async fn black_box(
    client: &reqwest::Client,
    nodes: &[String],
    options: &Options,
) -> anyhow::Result<String> {
    let urls = tokio::task::spawn_blocking({
        let nodes = nodes.to_vec();
        move || fresh_database(&nodes)
    })
    .await??;
    let platform = Platform::start(Duration::from_millis(options.platform_ms)).await?;
    let ttl = TTL_SECS.to_string();
    let env =
        [("MALL_DATA_PLATFORM_URL", platform.url.as_str()), ("MALL_ORDER_TTL_SECS", ttl.as_str())];
    let instances = start(&urls[..3], options, &env)?;
    let bases = instances.bases.clone();
    let started = Instant::now();

    // 2 000 buyers, 500 units: order, then pay, each call on a random instance.
    let sale = flash::run(client, &bases, options.connections as u64, Some(&urls[0])).await;
    let sale = sale.context("the flash sale")?;

    // 300 reservations left to expire, on another product.
    let created = seed::admin(
        client,
        &bases[0],
        reqwest::Method::POST,
        "/product",
        json!({"name": "Reserved", "price": 1, "quantity": 1_000}),
    )
    .await?;
    let reserved_product = created["product"]["id"].as_i64().context("an id")?;
    let url = urls[0].clone();
    tokio::task::spawn_blocking(move || seed::users_database(&url, "keep", RESERVERS, 10))
        .await??;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RESERVERS {
        let (client, bases) = (client.clone(), bases.clone());
        tasks.spawn(async move {
            let base = &bases[(i % 3) as usize];
            let items = json!([{"product_id": reserved_product, "count": 1}]);
            call(client.post(format!("{base}/order/keep{i}")).json(&items)).await["errorcode"]
                .clone()
        });
    }
    let mut reserved_ok = 0;
    let mut reserve_other = Vec::new();
    while let Some(code) = tasks.join_next().await {
        match code? {
            Value::Number(n) if n.as_i64() == Some(0) => reserved_ok += 1,
            other => reserve_other.push(other),
        }
    }

    // One form paid on every instance at once: exactly one payment.
    let url = urls[0].clone();
    tokio::task::spawn_blocking(move || seed::users_database(&url, "once", 1, 10)).await??;
    let items = json!([{"product_id": reserved_product, "count": 1}]);
    let placed = call(client.post(format!("{}/order/once0", bases[1])).json(&items)).await;
    if placed["errorcode"] != 0 {
        bail!("the form to pay at once was not placed: {placed}");
    }
    let pays: Vec<_> = bases
        .iter()
        .map(|base| {
            let request = client.post(format!("{base}/order/once0/pay")).json(&items);
            tokio::spawn(async move { call(request).await["errorcode"].clone() })
        })
        .collect();
    let mut codes = Vec::new();
    for pay in pays {
        codes.push(pay.await?);
    }
    let paid_once = codes.iter().filter(|c| **c == 0).count();
    let refused = codes.iter().filter(|c| **c == 5).count();

    // Expiry and delivery: wait for the forms to expire and every event to arrive.
    let payments_expected = flash::UNITS + 1;
    let deadline = Instant::now() + Duration::from_secs(TTL_SECS + 60);
    let (mut available, mut delivered);
    loop {
        let product: Value =
            call(client.get(format!("{}/product/{reserved_product}", bases[2]))).await;
        available = product["product"]["quantity"].as_i64().unwrap_or(-1);
        delivered = platform.counts().0;
        if (available == 1_000 - 1 && delivered >= payments_expected) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (distinct, posts) = platform.counts();
    drop(instances);

    let url = urls[0].clone();
    let ledger = tokio::task::spawn_blocking(move || -> anyhow::Result<(i64, i64, i64, i64)> {
        let mut c = MysqlConnection::establish(&url)?;
        c.batch_execute("SET SESSION wsrep_sync_wait = 1")?;
        Ok((
            number(&mut c, "SELECT COUNT(*) AS n FROM payments")?,
            number(&mut c, "SELECT COUNT(*) AS n FROM outbox_events WHERE delivered_at IS NULL")?,
            number(&mut c, "SELECT COUNT(*) AS n FROM order_forms WHERE status = 'expired'")?,
            number(
                &mut c,
                "SELECT COUNT(*) AS n FROM payments p JOIN order_forms f ON f.id = p.order_id \
                 WHERE f.status <> 'paid'",
            )?,
        ))
    })
    .await??;
    let (payments, undelivered, expired, paid_not_paid) = ledger;
    let url = urls[0].clone();
    tokio::task::spawn_blocking(move || drop_database(&url)).await?;

    let distinct_codes: BTreeSet<String> = reserve_other.iter().map(ToString::to_string).collect();
    let exact = reserved_ok == RESERVERS
        && paid_once == 1
        && refused == 2
        && available == 1_000 - 1
        && payments == payments_expected as i64
        && undelivered == 0
        && distinct >= payments_expected
        && paid_not_paid == 0
        && expired >= RESERVERS as i64;
    let summary = format!(
        "black box, 1 instance per node: flash sale {}; {reserved_ok}/{RESERVERS} reservations \
         placed (other answers: {distinct_codes:?}), {expired} forms expired, the product's \
         stock back to {available} of 1 000 (1 paid); one form paid on 3 instances at once: \
         answers {codes:?} ({paid_once} paid, {refused} code 5); payments in the database \
         {payments} (expected {payments_expected}), paid forms' payments on unpaid forms \
         {paid_not_paid}; events delivered {distinct} distinct in {posts} POSTs, undelivered \
         {undelivered}; {seconds:.1} s in all — {}",
        sale.note,
        if exact { "PASS" } else { "FAIL" }
    );
    if !exact {
        bail!("{summary}");
    }
    Ok(summary)
}

/// The whole `--galera` run; prints a markdown table and the black-box summary.
pub async fn run(nodes: &[String], options: &Options) -> anyhow::Result<()> {
    if nodes.len() < 3 {
        bail!("--galera needs the three nodes' URLs (mysql://root@127.0.0.1:3307,…)");
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.connections).build()?;
    let mut rows = Vec::new();
    for on_one_node in [false, true] {
        rows.push(layout(&client, nodes, on_one_node, options).await?);
    }
    let black = black_box(&client, nodes, options).await;
    println!(
        "| instances | purchases ({} s, {} connections, {} products) | flash sale: 2 000 buyers, 500 units (order + pay, each call on a random instance) |",
        options.seconds, options.connections, options.products
    );
    println!("|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    match black {
        Ok(summary) => println!("\n{summary}"),
        Err(error) => {
            println!("\n{error:#}");
            bail!("the black-box run failed");
        }
    }
    Ok(())
}
