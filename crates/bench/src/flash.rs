//! The flash sale: 2 000 buyers, one product with 500 units, each buyer orders one and pays.
//! Exactly 500 must be paid and the rest refused with code 4; the API must show 0 left, and on
//! MariaDB the database itself must agree, row by row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use diesel::sql_types::BigInt;
use diesel::{Connection, MysqlConnection, QueryableByName, RunQueryDsl};
use serde_json::{json, Value};

use crate::load::p50_p99_ms;
use crate::seed;

pub const BUYERS: u64 = 2_000;
pub const UNITS: u64 = 500;

/// What the flash sale measured.
#[derive(Debug)]
pub struct Sale {
    pub buyers: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub note: String,
}

/// Runs the sale on the server at `base`; `database_url` is the MariaDB database behind it, if
/// any: its buyers are then registered there directly, and the outcome checked there too.
///
/// With several servers in `bases` (instances on a cluster's nodes), each call goes to one
/// drawn at random: a buyer's order and payment usually reach different instances.
pub async fn run(
    client: &reqwest::Client,
    bases: &[String],
    connections: u64,
    database_url: Option<&str>,
) -> anyhow::Result<Sale> {
    let base = bases[0].as_str();
    let created = seed::admin(
        client,
        base,
        reqwest::Method::POST,
        "/product",
        json!({"name": "Flash", "price": 1, "quantity": UNITS}),
    )
    .await?;
    let product = created["product"]["id"].as_i64().context("an id")?;
    match database_url {
        Some(url) => {
            let url = url.to_owned();
            tokio::task::spawn_blocking(move || seed::users_database(&url, "flash", BUYERS, 10))
                .await??;
        }
        None => seed::users_api(client, base, "flash", BUYERS, 10, connections).await?,
    }
    let next = Arc::new(AtomicU64::new(0));
    let (paid, sold_out, other) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let (client, bases, next) = (client.clone(), bases.to_vec(), next.clone());
        let (paid, sold_out, other) = (paid.clone(), sold_out.clone(), other.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut rng = crate::load::Rng::new(connection + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= BUYERS {
                    return latencies;
                }
                let items = json!([{"product_id": product, "count": 1}]);
                let sent = Instant::now();
                let base = &bases[rng.below(bases.len() as u64) as usize];
                let code = errorcode(
                    client.post(format!("{base}/order/flash{i}")).json(&items).send().await,
                )
                .await;
                if code == 0 {
                    let base = &bases[rng.below(bases.len() as u64) as usize];
                    let pay = client.post(format!("{base}/order/flash{i}/pay")).json(&items);
                    let paid_code = errorcode(pay.send().await).await;
                    if paid_code == 0 { &paid } else { &other }.fetch_add(1, Ordering::Relaxed);
                } else if code == 4 {
                    sold_out.fetch_add(1, Ordering::Relaxed);
                } else {
                    other.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
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
    let exact = paid == UNITS
        && sold_out == BUYERS - UNITS
        && other == 0
        && left["product"]["quantity"] == 0;
    if !exact {
        bail!("flash sale: {paid} paid, {sold_out} sold out, {other} other, {left} left — expected exactly {UNITS} paid");
    }
    let mut note = format!(
        "{:.0} buyers/s; API: exactly 500 paid, 1 500 code 4, 0 left",
        BUYERS as f64 / seconds
    );
    if let Some(url) = database_url {
        let url = url.to_owned();
        let rows = tokio::task::spawn_blocking(move || check_database(&url, product)).await??;
        note.push_str(&format!("; DB: {rows}"));
    }
    Ok(Sale { buyers: BUYERS, errors: other, seconds, p50_ms, p99_ms, note })
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

/// The flash product's rows, as the database has them after the sale.
#[derive(Debug, QueryableByName)]
struct Ledger {
    #[diesel(sql_type = BigInt)]
    available: i64,
    #[diesel(sql_type = BigInt)]
    reserved: i64,
    /// Paid forms with a line for the product.
    #[diesel(sql_type = BigInt)]
    paid_forms: i64,
    /// Payments of those forms.
    #[diesel(sql_type = BigInt)]
    payments: i64,
    /// Pending forms still holding the product.
    #[diesel(sql_type = BigInt)]
    pending_forms: i64,
    /// Units of the product in paid forms.
    #[diesel(sql_type = BigInt)]
    paid_units: i64,
    /// Units of the product the ranking counts.
    #[diesel(sql_type = BigInt)]
    ranked_units: i64,
}

/// Checks the sale in the database: the product has 0 available and 0 reserved, exactly 500
/// paid forms hold it with 500 units in all, each with its payment, and no pending form holds
/// it. Returns a summary for the report.
fn check_database(url: &str, product: i64) -> anyhow::Result<String> {
    let mut conn =
        MysqlConnection::establish(url).with_context(|| format!("connecting to {url}"))?;
    // On a Galera node, read after every write the cluster committed (no such variable on
    // other servers, which is fine).
    let _ = diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "SET SESSION wsrep_sync_wait = 1",
    );
    let ledger: Ledger = diesel::sql_query(
        "SELECT \
           (SELECT available FROM products WHERE id = ?) AS available, \
           (SELECT reserved FROM products WHERE id = ?) AS reserved, \
           (SELECT COUNT(DISTINCT f.id) FROM order_forms f \
              JOIN order_lines l ON l.order_id = f.id \
              WHERE l.product_id = ? AND f.status = 'paid') AS paid_forms, \
           (SELECT COUNT(*) FROM payments p \
              JOIN order_lines l ON l.order_id = p.order_id \
              WHERE l.product_id = ?) AS payments, \
           (SELECT COUNT(*) FROM order_forms f \
              JOIN order_lines l ON l.order_id = f.id \
              WHERE l.product_id = ? AND f.status = 'pending') AS pending_forms, \
           (SELECT CAST(COALESCE(SUM(l.count), 0) AS SIGNED) FROM order_forms f \
              JOIN order_lines l ON l.order_id = f.id \
              WHERE l.product_id = ? AND f.status = 'paid') AS paid_units, \
           (SELECT CAST(COALESCE(SUM(units), 0) AS SIGNED) FROM sales_hourly \
              WHERE product_id = ?) AS ranked_units",
    )
    .bind::<BigInt, _>(product)
    .bind::<BigInt, _>(product)
    .bind::<BigInt, _>(product)
    .bind::<BigInt, _>(product)
    .bind::<BigInt, _>(product)
    .bind::<BigInt, _>(product)
    .bind::<BigInt, _>(product)
    .get_result(&mut conn)
    .context("reading the flash sale back from the database")?;
    let units = UNITS as i64;
    let exact = ledger.available == 0
        && ledger.reserved == 0
        && ledger.paid_forms == units
        && ledger.payments == units
        && ledger.pending_forms == 0
        && ledger.paid_units == units
        && ledger.ranked_units == units;
    if !exact {
        bail!("flash sale: the database disagrees: {ledger:?}; expected 0 available, 0 reserved, {UNITS} paid forms, {UNITS} payments, 0 pending forms, {UNITS} paid units, {UNITS} ranked units");
    }
    Ok(format!(
        "available 0, reserved 0, {} paid forms, {} payments, 0 pending, {} units paid and ranked",
        ledger.paid_forms, ledger.payments, ledger.paid_units
    ))
}
