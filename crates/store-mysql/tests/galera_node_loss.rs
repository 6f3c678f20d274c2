//! Losing a Galera node under load: a store on each of the three nodes of `make cluster-up`'s
//! cluster takes a mix of charges, orders and payments (forms live 3 s, so each store's sweeper
//! expires forms throughout); node 3's `mariadbd` is killed with SIGKILL, then started again
//! and must rejoin. Afterwards the invariants of docs/reliability.md hold on the data, the
//! three nodes hold the same tables, and the cluster is whole again (it is restored even when
//! the test fails). Prints the stall the other nodes' stores saw and the rejoin time.
//!
//! Runs alone among the cluster tests: it takes the cluster lock exclusively (the others hold
//! it shared). Needs the script's own cluster; skipped when `MALL_TEST_GALERA=off` or when
//! `MALL_TEST_GALERA_URLS` names another one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain::errors::ChargeError;
use domain::idempotency::{IdempotencyError, IdempotencyKey, Remember};
use domain::ports::{OrderRepository, PaymentRepository, UserRepository};
use domain::values::ProductId;
use store_contract::support::{form, plan, points, product_with, request_for, uid};
use store_mysql::testing::{fresh_galera_stores, galera_exclusive};
use store_mysql::{MysqlStore, PoolOptions};

const USERS: usize = 24;
const PRODUCTS: usize = 4;
const STOCK: i64 = 400;
const WORKERS: usize = 6;
const LOAD: Duration = Duration::from_secs(16);
const KILL_AT: Duration = Duration::from_secs(4);
const RESTART_AT: Duration = Duration::from_secs(8);
const TTL: TimeDelta = TimeDelta::seconds(3);
const POOL: PoolOptions = PoolOptions {
    size: 4,
    checkout_timeout: Duration::from_secs(10),
    statement_timeout: Duration::from_secs(10),
};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/galera-cluster.sh")
}

fn cluster(args: &[&str]) -> bool {
    Command::new("bash").arg(script()).args(args).status().is_ok_and(|s| s.success())
}

/// Brings the cluster back to three nodes however the test ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if !cluster(&["up"]) {
            eprintln!("*** could not restore the Galera cluster: run `make cluster-up`");
        }
    }
}

/// A small xorshift, seeded per worker: no need for a random crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[derive(Default)]
struct Log {
    /// Points each charge that is known to have happened added.
    charged: AtomicI64,
    /// The last success of each store, and the longest gap between two successes of stores 1
    /// and 2 (on the nodes that stay up) while node 3 was gone.
    last_ok: Mutex<HashMap<usize, Instant>>,
    longest_gap: Mutex<Duration>,
    node_down: AtomicBool,
    /// The longest a probe charge through node 1 took while node 3 was gone.
    probe_longest: Mutex<Duration>,
    ok: AtomicI64,
    failed: AtomicI64,
}

impl Log {
    fn success(&self, store: usize) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last_ok.lock().expect("lock");
        if let Some(before) = last.insert(store, now) {
            if store < 2 && self.node_down.load(Ordering::Relaxed) {
                let mut gap = self.longest_gap.lock().expect("lock");
                *gap = (*gap).max(now - before);
            }
        }
    }
}

async fn charge_for_sure(
    stores: &[Arc<MysqlStore>],
    log: &Log,
    user: usize,
    n: u64,
    rng: &mut Rng,
) {
    let id = uid(&format!("u{user}"));
    let amount = 1 + rng.below(200) as i64;
    let key = IdempotencyKey::new(id.clone(), &format!("c{n}"), format!("fp{n}")).expect("key");
    let remember = Remember { key, at: Utc::now(), expires_at: Utc::now() + TimeDelta::hours(1) };
    // Retried with the same key until the answer is definite, so the log is exact.
    for _ in 0..200 {
        let s = rng.below(stores.len());
        match stores[s].charge(id.clone(), points(amount), Some(remember.clone())).await {
            Ok(_) | Err(ChargeError::Idempotency(IdempotencyError::AlreadyUsed)) => {
                log.charged.fetch_add(amount, Ordering::Relaxed);
                log.success(s);
                return;
            }
            Err(ChargeError::Idempotency(IdempotencyError::InProgress)) | Err(_) => {
                log.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("a charge never got a definite answer");
}

async fn worker(
    stores: Arc<Vec<Arc<MysqlStore>>>,
    log: Arc<Log>,
    products: Vec<ProductId>,
    w: usize,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1234_5678));
    let started = Instant::now();
    let mut n = 0_u64;
    while started.elapsed() < LOAD {
        n += 1;
        let user = rng.below(USERS);
        let s = rng.below(stores.len());
        let store = &stores[s];
        match rng.below(10) {
            0..=2 => charge_for_sure(&stores, &log, user, (w as u64) << 32 | n, &mut rng).await,
            3..=6 => {
                let mut lines = vec![(products[rng.below(PRODUCTS)], 1 + rng.below(3) as i64, 10)];
                let other = products[rng.below(PRODUCTS)];
                if other != lines[0].0 && rng.below(2) == 0 {
                    lines.push((other, 1, 10));
                }
                let id = format!("o-{w}-{n}");
                let order = form(&uid(&format!("u{user}")), &id, &lines, Utc::now(), TTL);
                match store.place(request_for(&order), None).await {
                    Ok(_)
                    | Err(domain::errors::PlaceOrderError::LackOfPoints)
                    | Err(domain::errors::PlaceOrderError::LackOfStock(_)) => log.success(s),
                    Err(_) => {
                        log.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {
                let user = uid(&format!("u{user}"));
                match store.pending(user, Utc::now()).await {
                    Ok(Some(order)) => {
                        match store.commit_payment(plan(&order, Utc::now()), None).await {
                            Ok(_)
                            | Err(domain::errors::PayError::LackOfPoints)
                            | Err(domain::errors::PayError::NoPendingOrder) => log.success(s),
                            Err(_) => {
                                log.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok(None) => log.success(s),
                    Err(_) => {
                        log.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

#[derive(QueryableByName, Debug)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn number(c: &mut MysqlConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Number>(c).unwrap_or_else(|e| panic!("{sql}: {e}")).n
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Checksum {
    #[diesel(sql_type = Text, column_name = "Table")]
    table: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>, column_name = "Checksum")]
    checksum: Option<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_under_load_loses_nothing_and_rejoins() {
    if std::env::var("MALL_TEST_GALERA_URLS").is_ok() {
        eprintln!("MALL_TEST_GALERA_URLS names another cluster: this test kills the script's");
        return;
    }
    let Some((nodes, _exclusive)) = galera_exclusive() else { return };
    let _restore = Restore;
    let (stores, urls) = fresh_galera_stores(&nodes, POOL).await;
    let stores: Arc<Vec<Arc<MysqlStore>>> = Arc::new(stores.into_iter().map(Arc::new).collect());
    let log = Arc::new(Log::default());

    let mut products = Vec::new();
    for _ in 0..PRODUCTS {
        products.push(product_with(&stores[0], 10, STOCK).await);
    }
    let mut rng = Rng(7);
    for u in 0..USERS {
        stores[0].register(uid(&format!("u{u}"))).await.expect("register");
        charge_for_sure(&stores, &log, u, u as u64, &mut rng).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut sweepers = Vec::new();
    for store in stores.iter() {
        let (store, stop) = (store.clone(), stop.clone());
        sweepers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = store.expire_due(Utc::now(), 100).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }
    // A probe: a charge through the store on node 1 every 50 ms; the longest wait for one
    // while node 3 is gone is the pause the surviving nodes' instances see.
    let probe = {
        let (stores, log, stop) = (stores.clone(), log.clone(), stop.clone());
        tokio::spawn(async move {
            let user = uid("u0");
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = IdempotencyKey::new(user.clone(), &format!("p{n}"), "probe".to_owned())
                    .expect("key");
                let remember =
                    Remember { key, at: Utc::now(), expires_at: Utc::now() + TimeDelta::hours(1) };
                let sent = Instant::now();
                loop {
                    match stores[0].charge(user.clone(), points(1), Some(remember.clone())).await {
                        Ok(_) | Err(ChargeError::Idempotency(IdempotencyError::AlreadyUsed)) => {
                            log.charged.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                if log.node_down.load(Ordering::Relaxed) {
                    let mut longest = log.probe_longest.lock().expect("lock");
                    *longest = (*longest).max(sent.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(stores.clone(), log.clone(), products.clone(), w)))
        .collect();

    tokio::time::sleep(KILL_AT).await;
    assert!(cluster(&["kill", "3"]), "kill node 3");
    log.node_down.store(true, Ordering::Relaxed);
    let killed = Instant::now();
    tokio::time::sleep(RESTART_AT - KILL_AT).await;
    let restart = Instant::now();
    let rejoined = tokio::task::spawn_blocking(|| cluster(&["start", "3"])).await.expect("task");
    let rejoin = restart.elapsed();
    assert!(rejoined, "node 3 rejoins the cluster");
    log.node_down.store(false, Ordering::Relaxed);
    let down_for = killed.elapsed();
    for w in workers {
        w.await.expect("worker");
    }
    stop.store(true, Ordering::Relaxed);
    probe.await.expect("probe");
    for s in sweepers {
        s.await.expect("sweeper");
    }
    // Every form expires in the end; sweep until none is due.
    tokio::time::sleep(Duration::from_secs(4)).await;
    while stores[0].expire_due(Utc::now(), 1_000).await.expect("sweep") > 0 {}

    let urls_for_check = urls.clone();
    let charged = log.charged.load(Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        let mut c = MysqlConnection::establish(&urls_for_check[0]).expect("connect");
        c.batch_execute("SET SESSION wsrep_sync_wait = 15").expect("causal reads");
        let balances =
            number(&mut c, "SELECT CAST(COALESCE(SUM(balance), 0) AS SIGNED) AS n FROM users");
        let paid =
            number(&mut c, "SELECT CAST(COALESCE(SUM(amount), 0) AS SIGNED) AS n FROM payments");
        assert_eq!(charged, balances + paid, "points: charged = balances + payments");
        let bad_stock = number(
            &mut c,
            &format!(
                "SELECT COUNT(*) AS n FROM products p WHERE p.available + p.reserved + \
                   (SELECT COALESCE(SUM(l.count), 0) FROM order_lines l JOIN order_forms f \
                      ON f.id = l.order_id WHERE f.status = 'paid' AND l.product_id = p.id) \
                 <> {STOCK} \
                 OR p.reserved <> (SELECT COALESCE(SUM(l.count), 0) FROM order_lines l \
                   JOIN order_forms f ON f.id = l.order_id \
                   WHERE f.status = 'pending' AND l.product_id = p.id)"
            ),
        );
        assert_eq!(bad_stock, 0, "stock: initial = available + reserved + sold, reserved = held");
        let forms_paid_twice = number(
            &mut c,
            "SELECT COUNT(*) AS n FROM (SELECT order_id FROM payments GROUP BY order_id \
             HAVING COUNT(*) > 1) t",
        );
        assert_eq!(forms_paid_twice, 0, "one payment per paid form");
        let paid_forms =
            number(&mut c, "SELECT COUNT(*) AS n FROM order_forms WHERE status = 'paid'");
        let payments = number(&mut c, "SELECT COUNT(*) AS n FROM payments");
        assert_eq!(paid_forms, payments, "a payment for every paid form, none for another");
        let not_paid = number(
            &mut c,
            "SELECT COUNT(*) AS n FROM payments p JOIN order_forms f ON f.id = p.order_id \
             WHERE f.status <> 'paid'",
        );
        assert_eq!(not_paid, 0, "no form both paid and expired (or replaced)");
        let events = number(&mut c, "SELECT COUNT(*) AS n FROM outbox_events");
        let one_each = number(&mut c, "SELECT COUNT(DISTINCT payment_id) AS n FROM outbox_events");
        assert_eq!((events, one_each), (payments, payments), "one event per payment");

        // The three nodes hold the same rows.
        let tables = "users, products, order_forms, order_lines, payments, outbox_events, \
                      sales_hourly, idempotency_keys";
        let sums: Vec<Vec<Checksum>> = urls_for_check
            .iter()
            .map(|url| {
                let mut c = MysqlConnection::establish(url).expect("connect");
                c.batch_execute("SET SESSION wsrep_sync_wait = 15").expect("causal reads");
                diesel::sql_query(format!("CHECKSUM TABLE {tables}"))
                    .load(&mut c)
                    .expect("checksum")
            })
            .collect();
        assert_eq!(sums[0], sums[1], "nodes 1 and 2 agree");
        assert_eq!(sums[0], sums[2], "node 3 caught up after rejoining");
        let size = number(
            &mut c,
            "SELECT CAST(variable_value AS SIGNED) AS n FROM information_schema.global_status \
             WHERE variable_name = 'WSREP_CLUSTER_SIZE'",
        );
        assert_eq!(size, 3, "the cluster is whole again");
        println!(
            "node loss: {} operations succeeded, {} failed (retried or refused with 503); \
             node 3 killed, restarted {:.1} s later; longest wait for a probe charge through \
             node 1 until node 3 was back {:.1} s; longest gap between successes of the \
             workers' calls to nodes 1-2 {:.1} s; rejoin (restart to Synced) {:.1} s; payments \
             {payments}; points {charged} = balances {balances} + paid {paid}",
            log.ok.load(Ordering::Relaxed),
            log.failed.load(Ordering::Relaxed),
            down_for.as_secs_f64() - rejoin.as_secs_f64(),
            log.probe_longest.lock().expect("lock").as_secs_f64(),
            log.longest_gap.lock().expect("lock").as_secs_f64(),
            rejoin.as_secs_f64(),
        );
    })
    .await
    .expect("the checks");
}
