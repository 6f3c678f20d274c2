//! The real binary on MariaDB, killed with SIGKILL and restarted: nothing committed is lost, and
//! a form that expired while the server was down gives its stock back at the next start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MALL: &str = env!("CARGO_BIN_EXE_mall");
const TOKEN: &str = "restart-test-token";

/// A running `mall` process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(database_url: &str, order_ttl_secs: u32) -> Self {
        let mut child = Command::new(MALL)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("MALL_BIND", "127.0.0.1:0")
            .env("MALL_ADMIN_TOKEN", TOKEN)
            .env("MALL_ORDER_TTL_SECS", order_ttl_secs.to_string())
            .env("MALL_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mall starts");
        let stdout = child.stdout.take().expect("stdout");
        let (address_tx, address_rx) = mpsc::channel();
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    if let Some(address) = entry["address"].as_str() {
                        let _ = address_tx.send(address.to_owned());
                    }
                }
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("mall says where it listens");
        Self {
            child,
            base: format!("http://{address}"),
        }
    }

    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut request = client
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().expect("a JSON body"))
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn send(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(method, path, Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn state_survives_kill_9_and_forms_that_expired_meanwhile_are_released() {
    let url = store_mysql::testing::fresh_database_url();

    // First life: a paid order, and a pending one.
    let server = Server::start(&url, 600);
    server.send("POST", "/user", json!({"id": "alice"}));
    server.send("PATCH", "/user/alice/charge", json!({"amount": 10_000}));
    server.send("POST", "/user", json!({"id": "bob"}));
    server.send("PATCH", "/user/bob/charge", json!({"amount": 5_000}));
    let product = server.send(
        "POST",
        "/product",
        json!({"name": "Tea", "price": 1_000, "quantity": 10}),
    );
    let tea = product["product"]["id"].as_i64().expect("id");
    let paid_items = json!([{"product_id": tea, "count": 3}]);
    server.send("POST", "/order/alice", paid_items.clone());
    let paid = server.send("POST", "/order/alice/pay", paid_items.clone());
    let bobs_form = server.send(
        "POST",
        "/order/bob",
        json!([{"product_id": tea, "count": 2}]),
    );
    server.kill_9();

    // Second life: everything is still there. Carol's form expires while the server is down.
    let server = Server::start(&url, 1);
    assert_eq!(server.get("/user/alice/point")["amount"], 7_000);
    assert_eq!(server.get("/user/bob/point")["amount"], 5_000);
    assert_eq!(
        server.get(&format!("/product/{tea}"))["product"]["quantity"],
        5
    );
    assert_eq!(
        server.get("/order/bob")["order"],
        bobs_form["order"],
        "the pending form survived"
    );
    assert_eq!(
        server.get("/product/ranked")["products"][0]["sold"],
        3,
        "the payment survived"
    );
    let (status, again) = server.call("POST", "/order/alice/pay", Some(paid_items));
    assert_eq!(
        (status, again["errorcode"].clone()),
        (404, json!(5)),
        "still paid once: {paid}"
    );
    server.send("POST", "/user", json!({"id": "carol"}));
    server.send("PATCH", "/user/carol/charge", json!({"amount": 5_000}));
    server.send(
        "POST",
        "/order/carol",
        json!([{"product_id": tea, "count": 4}]),
    );
    assert_eq!(
        server.get(&format!("/product/{tea}"))["product"]["quantity"],
        1
    );
    server.kill_9();
    std::thread::sleep(Duration::from_millis(1_500));

    // Third life: carol's expired form is released by the first sweep; bob's is untouched.
    let server = Server::start(&url, 600);
    let started = Instant::now();
    while server.get(&format!("/product/{tea}"))["product"]["quantity"] != 5 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the expired form was not released"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = server.call("GET", "/order/carol", None);
    assert_eq!((status, body["errorcode"].clone()), (404, json!(5)));
    assert_eq!(
        server.get("/order/bob")["order"]["id"],
        bobs_form["order"]["id"]
    );
    assert_eq!(server.get("/user/carol/point")["amount"], 5_000);
}

#[test]
fn migrate_applies_the_migrations_without_serving() {
    let url = store_mysql::testing::fresh_database_url();
    let output = Command::new(MALL)
        .args(["migrate", "--database-url", &url])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        store_mysql::migrate(&url).expect("reachable").is_empty(),
        "nothing left to apply"
    );
    let output = Command::new(MALL)
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
}
