//! Seeding: over the HTTP API (the in-memory store has no other way in), or straight into
//! MariaDB with `INSERT … SELECT` from the Sequence engine's `seq_A_to_B` tables, which is
//! what makes 100 000 users and a million `sales_hourly` rows take seconds.

use std::time::Instant;

use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection, RunQueryDsl};
use serde_json::{json, Value};

pub const TOKEN: &str = "bench-admin-token";

/// Every seeded user's balance: enough for any run.
pub const BALANCE: i64 = 1_000_000_000_000;
/// Every seeded product's stock: no scenario runs out.
pub const STOCK: i64 = 1_000_000_000;

pub async fn admin(
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

/// Runs `each(client, base, i)` for every `i` in `0..count`, split into `connections` runs of
/// consecutive numbers that go on at once; the first error stops the seeding.
async fn over_api<F, Fut>(
    client: &reqwest::Client,
    base: &str,
    count: u64,
    connections: u64,
    each: F,
) -> anyhow::Result<()>
where
    F: Fn(reqwest::Client, String, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    let per = count.div_ceil(connections.max(1));
    for worker in 0..connections {
        let (client, base, each) = (client.clone(), base.to_owned(), each.clone());
        tasks.spawn(async move {
            for i in worker * per..((worker + 1) * per).min(count) {
                each(client.clone(), base.clone(), i).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Adds `products` products (ids 1…, each with [`STOCK`] units) over the API, `connections` at
/// a time.
pub async fn products_api(
    client: &reqwest::Client,
    base: &str,
    products: u64,
    connections: u64,
) -> anyhow::Result<()> {
    over_api(client, base, products, connections, |client, base, i| async move {
        let body =
            json!({"name": format!("Product {i}"), "price": 100 + i % 50, "quantity": STOCK});
        admin(&client, &base, reqwest::Method::POST, "/product", body).await.map(drop)
    })
    .await
}

/// Registers users `{prefix}0` … `{prefix}{count - 1}` over the API and charges each `balance`,
/// `connections` at a time.
pub async fn users_api(
    client: &reqwest::Client,
    base: &str,
    prefix: &'static str,
    count: u64,
    balance: i64,
    connections: u64,
) -> anyhow::Result<()> {
    over_api(client, base, count, connections, move |client, base, i| async move {
        let id = format!("{prefix}{i}");
        admin(&client, &base, reqwest::Method::POST, "/user", json!({ "id": id })).await?;
        let path = format!("/user/{id}/charge");
        admin(&client, &base, reqwest::Method::PATCH, &path, json!({ "amount": balance }))
            .await
            .map(drop)
    })
    .await
}

/// A few paid sales over the API, so an in-memory ranking has something to rank.
pub async fn sales_api(
    client: &reqwest::Client,
    base: &str,
    products: u64,
    users: u64,
) -> anyhow::Result<()> {
    for i in 0..50_u64 {
        let items = json!([{"product_id": 1 + i % products.min(20), "count": 1}]);
        let user = i % users;
        let order = format!("/order/u{user}");
        admin(client, base, reqwest::Method::POST, &order, items.clone()).await?;
        admin(client, base, reqwest::Method::POST, &format!("{order}/pay"), items).await?;
    }
    Ok(())
}

/// A connection for seeding: foreign keys unchecked (every row it writes refers to rows it
/// wrote first).
fn connect(url: &str) -> anyhow::Result<MysqlConnection> {
    let mut conn =
        MysqlConnection::establish(url).with_context(|| format!("connecting to {url}"))?;
    conn.batch_execute("SET SESSION foreign_key_checks = 0")?;
    Ok(conn)
}

fn execute(conn: &mut MysqlConnection, sql: &str) -> anyhow::Result<usize> {
    diesel::sql_query(sql).execute(conn).with_context(|| format!("seeding: {sql}"))
}

/// Seeds the MariaDB database at `url` (already migrated by the server) directly: products
/// 1…`products` with [`STOCK`] units, users `u0`… with [`BALANCE`], and `products × sales_hours`
/// rows in `sales_hourly`: every product in every one of the last `sales_hours` UTC hours
/// (hour-truncated, as the server writes them), with 1–97 units each.
pub fn database(
    url: &str,
    label: &str,
    products: u64,
    users: u64,
    sales_hours: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = connect(url)?;
    let seq_ok = diesel::sql_query("SELECT seq FROM seq_1_to_2").execute(&mut conn);
    if seq_ok.is_err() {
        bail!("the bench seeds MariaDB with the Sequence engine's seq_1_to_N tables, which this server lacks");
    }
    execute(
        &mut conn,
        &format!(
            "INSERT INTO products (id, name, price, available) \
             SELECT seq, CONCAT('Product ', seq), 100 + seq % 50, {STOCK} FROM seq_1_to_{products}"
        ),
    )?;
    // In chunks: one transaction each, and a progress line.
    let chunk = 100_000;
    let mut first = 0;
    while first < users {
        let last = (first + chunk).min(users) - 1;
        execute(
            &mut conn,
            &format!(
                "INSERT INTO users (id, balance) \
                 SELECT CONCAT('u', seq), {BALANCE} FROM seq_{first}_to_{last}"
            ),
        )?;
        first = last + 1;
    }
    let rows = products * sales_hours;
    // One hour for every chunk, so the chunks never overlap even if the clock turns an hour.
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let this_hour = now.format("%Y-%m-%d %H:00:00");
    let hours_per_chunk = (250_000 / products.max(1)).max(1);
    let mut hour = 0;
    while hour < sales_hours {
        let last = (hour + hours_per_chunk).min(sales_hours) - 1;
        execute(
            &mut conn,
            &format!(
                "INSERT INTO sales_hourly (hour, product_id, units) \
                 SELECT TIMESTAMP('{this_hour}') - INTERVAL h.seq HOUR, p.seq, \
                        1 + CRC32(CONCAT(p.seq, '/', h.seq)) % 97 \
                 FROM seq_{hour}_to_{last} h CROSS JOIN seq_1_to_{products} p"
            ),
        )?;
        hour = last + 1;
        crate::load::status(&format!(
            "{label} seeding MariaDB: {products} products, {users} users, {}/{rows} sales rows",
            hour * products
        ));
    }
    crate::load::status(&format!(
        "{label} seeded MariaDB: {products} products, {users} users, {rows} sales_hourly rows in {:.1} s\n",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Registers users `{prefix}0` … `{prefix}{count - 1}` with `balance`, straight into MariaDB.
pub fn users_database(url: &str, prefix: &str, count: u64, balance: i64) -> anyhow::Result<()> {
    let mut conn = connect(url)?;
    execute(
        &mut conn,
        &format!(
            "INSERT INTO users (id, balance) SELECT CONCAT('{prefix}', seq), {balance} \
             FROM seq_0_to_{}",
            count.saturating_sub(1)
        ),
    )?;
    Ok(())
}
