//! The fault run: a mixed load of charges, orders and payments against the real binary on
//! MariaDB while the binary is killed with SIGKILL and restarted several times and MariaDB
//! itself is restarted once. Afterwards the invariants are checked from the database and from
//! the client's own log of what it was told.
//!
//! Every state-changing call carries an `Idempotency-Key`, and a call whose answer was lost to
//! a fault is retried with the same key until it gets a definite answer, so the client's log is
//! exact even across crashes.
//!
//! Not part of the parallel suite (it restarts the shared MariaDB): `make chaos` runs it long,
//! `make test` runs it short after everything else. `CHAOS_SECONDS`, `CHAOS_KILLS` and
//! `CHAOS_DB_RESTARTS` set its size.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{FakePlatform, Server, TOKEN};
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, MysqlConnection, QueryableByName, RunQueryDsl};
use serde_json::{json, Value};

const USERS: usize = 24;
const WORKERS: usize = 6;
const PRODUCTS: usize = 5;
const INITIAL_STOCK: i64 = 400;
const RESTOCK: i64 = 50;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The server's address stays fixed across restarts so clients keep one base URL.
struct Target {
    base: String,
    env: Vec<(String, String)>,
    server: Mutex<Option<Server>>,
}

impl Target {
    fn start(&self) {
        let env: Vec<(&str, &str)> =
            self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        *self.server.lock().expect("lock") = Some(Server::start(&env));
    }

    fn kill_9(&self) {
        if let Some(server) = self.server.lock().expect("lock").take() {
            server.kill_9();
        }
    }
}

#[derive(Default)]
struct Log {
    attempted: AtomicU64,
    succeeded: AtomicU64,
    refused: AtomicU64,
    retries: AtomicU64,
    charged: AtomicU64,
    payments: Mutex<HashMap<String, i64>>,
}

/// Sends one call until it gets a definite answer: any 2xx or 4xx except "in progress" (409)
/// and "too many" (429). Lost answers (a killed server, a restarting database) are retried with
/// the same idempotency key.
fn definite(
    client: &reqwest::blocking::Client,
    log: &Log,
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut request = client.request(method.clone(), url).timeout(Duration::from_secs(10));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Ok(response) = request.send() {
            let status = response.status().as_u16();
            if let Ok(body) = response.json::<Value>() {
                let in_progress = status == 409 && body["errorcode"] == 1;
                if (200..500).contains(&status) && !in_progress && status != 429 {
                    return (status, body);
                }
            }
        }
        assert!(Instant::now() < deadline, "{method} {url} got no definite answer in 90 s");
        log.retries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn worker(target: &Target, log: &Log, users: &[String], stop: &AtomicBool, seed: u64) {
    let client = reqwest::blocking::Client::new();
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    while !stop.load(Ordering::Relaxed) {
        let user = &users[next(users.len() as u64) as usize];
        let key = uuid::Uuid::new_v4().to_string();
        log.attempted.fetch_add(1, Ordering::Relaxed);
        let (status, body) = match next(10) {
            0..=2 => {
                let amount = 1 + next(500) as i64;
                let url = format!("{}/user/{user}/charge", target.base);
                let answer = definite(
                    &client,
                    log,
                    reqwest::Method::PATCH,
                    &url,
                    Some(&key),
                    Some(&json!({ "amount": amount })),
                );
                if answer.0 == 200 {
                    log.charged.fetch_add(amount as u64, Ordering::Relaxed);
                }
                answer
            }
            3..=6 => {
                let lines: Vec<Value> = (0..1 + next(2))
                    .map(|_| json!({"product_id": 1 + next(PRODUCTS as u64), "count": 1 + next(3)}))
                    .collect();
                let url = format!("{}/order/{user}", target.base);
                definite(
                    &client,
                    log,
                    reqwest::Method::POST,
                    &url,
                    Some(&key),
                    Some(&Value::Array(lines)),
                )
            }
            _ => {
                let url = format!("{}/order/{user}", target.base);
                let (status, pending) =
                    definite(&client, log, reqwest::Method::GET, &url, None, None);
                if status != 200 {
                    (status, pending)
                } else {
                    let items: Vec<Value> = pending["order"]["items"]
                        .as_array()
                        .expect("items")
                        .iter()
                        .map(|l| json!({"product_id": l["product_id"], "count": l["count"]}))
                        .collect();
                    let url = format!("{}/order/{user}/pay", target.base);
                    let answer = definite(
                        &client,
                        log,
                        reqwest::Method::POST,
                        &url,
                        Some(&key),
                        Some(&Value::Array(items)),
                    );
                    if answer.0 == 200 {
                        let payment = &answer.1["payment"];
                        let id = payment["id"].as_str().expect("payment id").to_owned();
                        let amount = payment["amount"].as_i64().expect("amount");
                        log.payments.lock().expect("lock").insert(id, amount);
                    }
                    answer
                }
            }
        };
        let counter = if (200..300).contains(&status) { &log.succeeded } else { &log.refused };
        counter.fetch_add(1, Ordering::Relaxed);
        assert!(body["errorcode"].is_u64(), "a SPEC answer: {body}");
    }
}

fn mariadb(args: &[&str]) -> bool {
    Command::new("mariadb-admin")
        .args(["-uroot", "-h127.0.0.1"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Where Debian's MariaDB writes its pid (`/etc/mysql/my.cnf`).
const MARIADB_PID_FILE: &str = "/run/mysqld/mysqld.pid";

fn restart_mariadb() {
    assert!(mariadb(&["shutdown"]), "MariaDB shuts down");
    std::thread::sleep(Duration::from_secs(1));
    let started = Command::new("start-stop-daemon")
        // By its pid file: with `--exec` alone, a Galera node of `make cluster-up` (the same
        // executable) counts as "already running" and nothing is started.
        .args(["--start", "--oknodo", "--background", "--pidfile", MARIADB_PID_FILE])
        .args(["--exec", "/usr/sbin/mariadbd"])
        .status()
        .expect("start-stop-daemon runs");
    assert!(started.success(), "MariaDB starts again");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !mariadb(&["ping"]) {
        assert!(Instant::now() < deadline, "MariaDB did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

fn number(conn: &mut MysqlConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Number>(conn).unwrap_or_else(|e| panic!("{sql}: {e}")).n
}

fn names(conn: &mut MysqlConnection, sql: &str) -> HashSet<String> {
    diesel::sql_query(sql)
        .load::<Name>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.name)
        .collect()
}

#[test]
#[ignore = "restarts the shared MariaDB: run with `make chaos` (or `make test`, short)"]
fn invariants_hold_through_crashes_and_a_database_restart() {
    let seconds = setting("CHAOS_SECONDS", 20);
    let kills = setting("CHAOS_KILLS", 3);
    let db_restarts = setting("CHAOS_DB_RESTARTS", 1);
    let url = store_mysql::testing::fresh_database_url();
    let platform = FakePlatform::start(&[]);
    let port = common::closed_port();
    let target = Arc::new(Target {
        base: format!("http://127.0.0.1:{port}"),
        env: vec![
            ("DATABASE_URL".into(), url.clone()),
            ("MALL_BIND".into(), format!("127.0.0.1:{port}")),
            ("MALL_DATA_PLATFORM_URL".into(), platform.url.clone()),
            ("MALL_ORDER_TTL_SECS".into(), "3".into()),
            ("MALL_DB_TIMEOUT_MS".into(), "1000".into()),
            ("RUST_LOG".into(), "error,app=info".into()),
        ],
        server: Mutex::new(None),
    });
    target.start();

    // The shop: products (some restocked) and users, before any fault.
    let admin = reqwest::blocking::Client::new();
    let mut initial: HashMap<i64, i64> = HashMap::new();
    for i in 0..PRODUCTS {
        let body = json!({"name": format!("Item {i}"), "price": 10 + i as i64 * 7, "quantity": INITIAL_STOCK});
        let created: Value = admin
            .post(format!("{}/product", target.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .expect("add")
            .json()
            .expect("JSON");
        let id = created["product"]["id"].as_i64().expect("id");
        initial.insert(id, INITIAL_STOCK);
        if i % 2 == 0 {
            let restocked = admin
                .patch(format!("{}/product/{id}", target.base))
                .bearer_auth(TOKEN)
                .json(&json!({"restock": RESTOCK}))
                .send()
                .expect("restock");
            assert!(restocked.status().is_success());
            *initial.get_mut(&id).expect("known") += RESTOCK;
        }
    }
    let users: Vec<String> = (0..USERS).map(|i| format!("chaos{i}")).collect();
    for user in &users {
        let created = admin
            .post(format!("{}/user", target.base))
            .json(&json!({"id": user}))
            .send()
            .expect("register");
        assert_eq!(created.status().as_u16(), 201);
    }

    // The load, and the faults.
    let log = Arc::new(Log::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (target, log, stop) = (target.clone(), log.clone(), stop.clone());
            let mine: Vec<String> = users.iter().skip(w).step_by(WORKERS).cloned().collect();
            std::thread::spawn(move || {
                worker(&target, &log, &mine, &stop, 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1))
            })
        })
        .collect();
    let started = Instant::now();
    let faults = kills + db_restarts;
    let gap = Duration::from_secs(seconds) / u32::try_from(faults + 1).expect("few faults");
    let mut injected = Vec::new();
    for fault in 0..faults {
        std::thread::sleep(gap);
        if fault == faults / 2 && db_restarts > 0 {
            restart_mariadb();
            injected.push("MariaDB restart");
        } else {
            target.kill_9();
            std::thread::sleep(Duration::from_millis(300));
            target.start();
            injected.push("SIGKILL + restart");
        }
    }
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("a worker panicked");
    }

    // Let every event reach the platform.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health: Value = admin
            .get(format!("{}/health", target.base))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        if health["outbox"]["undelivered"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the outbox did not drain: {health}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The invariants, from the database and the client's log.
    let mut conn = MysqlConnection::establish(&url).expect("connect");
    let mut violations = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            violations.push(what);
        }
    };
    let balances =
        number(&mut conn, "SELECT CAST(COALESCE(SUM(balance), 0) AS SIGNED) AS n FROM users");
    let paid =
        number(&mut conn, "SELECT CAST(COALESCE(SUM(amount), 0) AS SIGNED) AS n FROM payments");
    let charged = i64::try_from(log.charged.load(Ordering::Relaxed)).expect("fits");
    check(
        charged == balances + paid,
        format!("Σ charged {charged} != Σ balances {balances} + Σ paid {paid}"),
    );
    let client_payments = log.payments.lock().expect("lock").clone();
    let client_paid: i64 = client_payments.values().sum();
    check(
        client_paid == paid,
        format!("the client was told of {client_paid} paid, the database holds {paid}"),
    );
    let db_payments = names(&mut conn, "SELECT id AS name FROM payments");
    let told: HashSet<String> = client_payments.keys().cloned().collect();
    check(
        db_payments == told,
        format!(
            "{} payments in the database, {} told to the client",
            db_payments.len(),
            told.len()
        ),
    );
    for (product, stock) in &initial {
        let on_shelf = number(
            &mut conn,
            &format!("SELECT available + reserved AS n FROM products WHERE id = {product}"),
        );
        let sold = number(&mut conn, &format!(
            "SELECT CAST(COALESCE(SUM(l.count), 0) AS SIGNED) AS n FROM order_lines l JOIN order_forms f ON f.id = l.order_id \
             WHERE l.product_id = {product} AND f.status = 'paid'"));
        let held = number(&mut conn, &format!(
            "SELECT CAST(COALESCE(SUM(l.count), 0) AS SIGNED) AS n FROM order_lines l JOIN order_forms f ON f.id = l.order_id \
             WHERE l.product_id = {product} AND f.status = 'pending'"));
        let reserved =
            number(&mut conn, &format!("SELECT reserved AS n FROM products WHERE id = {product}"));
        check(
            on_shelf + sold == *stock,
            format!(
                "product {product}: initial+restocked {stock} != on shelf {on_shelf} + sold {sold}"
            ),
        );
        check(
            reserved == held,
            format!("product {product}: reserved {reserved} != units in pending forms {held}"),
        );
    }
    check(
        number(&mut conn, "SELECT COUNT(*) AS n FROM users WHERE balance < 0") == 0,
        "a negative balance".into(),
    );
    check(
        number(&mut conn, "SELECT COUNT(*) AS n FROM products WHERE available < 0 OR reserved < 0")
            == 0,
        "a negative stock".into(),
    );
    let without_one_event = number(&mut conn,
        "SELECT COUNT(*) AS n FROM payments p WHERE (SELECT COUNT(*) FROM outbox_events e WHERE e.payment_id = p.id) <> 1");
    check(
        without_one_event == 0,
        format!("{without_one_event} payments without exactly one event"),
    );
    let undelivered =
        number(&mut conn, "SELECT COUNT(*) AS n FROM outbox_events WHERE delivered_at IS NULL");
    check(undelivered == 0, format!("{undelivered} events never delivered"));
    let events = names(&mut conn, "SELECT event_id AS name FROM outbox_events");
    let received: HashSet<String> = platform
        .received()
        .iter()
        .filter_map(|r| r.body["event_id"].as_str().map(str::to_owned))
        .collect();
    check(
        events.is_subset(&received),
        format!("{} events never reached the platform", events.difference(&received).count()),
    );
    let paid_not_paid = number(&mut conn,
        "SELECT COUNT(*) AS n FROM payments p JOIN order_forms f ON f.id = p.order_id WHERE f.status <> 'paid'");
    check(
        paid_not_paid == 0,
        format!("{paid_not_paid} paid forms not in status paid (expired or replaced)"),
    );

    let report = format!(
        "fault run: {seconds} s, {users} users, {workers} workers; operations attempted {attempted}, succeeded {succeeded}, \
         refused {refused}, retried after a fault {retries}; faults injected {faults} ({injected}); payments {payments}, \
         events delivered {delivered} (received {received_count} times); violations: {count}",
        users = USERS,
        workers = WORKERS,
        attempted = log.attempted.load(Ordering::Relaxed),
        succeeded = log.succeeded.load(Ordering::Relaxed),
        refused = log.refused.load(Ordering::Relaxed),
        retries = log.retries.load(Ordering::Relaxed),
        faults = injected.len(),
        injected = injected.join(", "),
        payments = db_payments.len(),
        delivered = events.len(),
        received_count = platform.received().len(),
        count = violations.len(),
    );
    println!("{report}");
    assert!(violations.is_empty(), "{report}\n{}", violations.join("\n"));
    assert!(
        log.succeeded.load(Ordering::Relaxed) > 0 && !db_payments.is_empty(),
        "the load did real work: {report}"
    );
}
