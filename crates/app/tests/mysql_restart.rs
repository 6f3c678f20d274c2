//! The real binary on MariaDB, killed with SIGKILL and restarted: nothing committed is lost, and
//! a form that expired while the server was down gives its stock back at the next start.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{closed_port, FakePlatform, Server, MALL};
use serde_json::json;

fn start(url: &str, order_ttl_secs: u32) -> Server {
    Server::start(&[("DATABASE_URL", url), ("MALL_ORDER_TTL_SECS", &order_ttl_secs.to_string())])
}

#[test]
fn state_survives_kill_9_and_forms_that_expired_meanwhile_are_released() {
    let url = store_mysql::testing::fresh_database_url();

    // First life: a paid order, and a pending one.
    let server = start(&url, 600);
    server.send("POST", "/user", json!({"id": "alice"}));
    server.send("PATCH", "/user/alice/charge", json!({"amount": 10_000}));
    server.send("POST", "/user", json!({"id": "bob"}));
    server.send("PATCH", "/user/bob/charge", json!({"amount": 5_000}));
    let product =
        server.send("POST", "/product", json!({"name": "Tea", "price": 1_000, "quantity": 10}));
    let tea = product["product"]["id"].as_i64().expect("id");
    let paid_items = json!([{"product_id": tea, "count": 3}]);
    server.send("POST", "/order/alice", paid_items.clone());
    let paid = server.send("POST", "/order/alice/pay", paid_items.clone());
    let bobs_form = server.send("POST", "/order/bob", json!([{"product_id": tea, "count": 2}]));
    server.kill_9();

    // Second life: everything is still there. Carol's form expires while the server is down.
    let server = start(&url, 1);
    assert_eq!(server.get("/user/alice/point")["amount"], 7_000);
    assert_eq!(server.get("/user/bob/point")["amount"], 5_000);
    assert_eq!(server.get(&format!("/product/{tea}"))["product"]["quantity"], 5);
    assert_eq!(server.get("/order/bob")["order"], bobs_form["order"], "the pending form survived");
    assert_eq!(server.get("/product/ranked")["products"][0]["sold"], 3, "the payment survived");
    let (status, again) = server.call("POST", "/order/alice/pay", Some(paid_items));
    assert_eq!((status, again["errorcode"].clone()), (404, json!(5)), "still paid once: {paid}");
    server.send("POST", "/user", json!({"id": "carol"}));
    server.send("PATCH", "/user/carol/charge", json!({"amount": 5_000}));
    server.send("POST", "/order/carol", json!([{"product_id": tea, "count": 4}]));
    assert_eq!(server.get(&format!("/product/{tea}"))["product"]["quantity"], 1);
    server.kill_9();
    std::thread::sleep(Duration::from_millis(1_500));

    // Third life: carol's expired form is released by the first sweep; bob's is untouched.
    let server = start(&url, 600);
    let started = Instant::now();
    while server.get(&format!("/product/{tea}"))["product"]["quantity"] != 5 {
        assert!(started.elapsed() < Duration::from_secs(3), "the expired form was not released");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = server.call("GET", "/order/carol", None);
    assert_eq!((status, body["errorcode"].clone()), (404, json!(5)));
    assert_eq!(server.get("/order/bob")["order"]["id"], bobs_form["order"]["id"]);
    assert_eq!(server.get("/user/carol/point")["amount"], 5_000);
}

#[test]
fn migrate_applies_the_migrations_without_serving() {
    let url = store_mysql::testing::fresh_database_url();
    let output =
        Command::new(MALL).args(["migrate", "--database-url", &url]).output().expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(store_mysql::migrate(&url).expect("reachable").is_empty(), "nothing left to apply");
    let output =
        Command::new(MALL).arg("migrate").env_remove("DATABASE_URL").output().expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
}

#[test]
fn an_event_committed_just_before_a_crash_is_delivered_after_the_restart() {
    let url = store_mysql::testing::fresh_database_url();
    let port = closed_port();
    let platform_url = format!("http://127.0.0.1:{port}/events");

    // The platform is down: the payment commits, its event waits in the outbox; then SIGKILL.
    let env = [("DATABASE_URL", url.as_str()), ("MALL_DATA_PLATFORM_URL", platform_url.as_str())];
    let server = Server::start(&env);
    server.send("POST", "/user", json!({"id": "alice"}));
    server.send("PATCH", "/user/alice/charge", json!({"amount": 1_000}));
    let product =
        server.send("POST", "/product", json!({"name": "Tea", "price": 300, "quantity": 5}));
    let items = json!([{"product_id": product["product"]["id"], "count": 2}]);
    server.send("POST", "/order/alice", items.clone());
    let paid = server.send("POST", "/order/alice/pay", items);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.get("/health")["outbox"]["undelivered"], 1);
    server.kill_9();

    // The platform comes up, on the address the event is meant for; mall restarts.
    let platform = FakePlatform::start_on_port(port, &[]);
    let server = Server::start(&env);
    let received = platform.wait_for(1, Duration::from_secs(10));
    assert_eq!(received[0].body["payment"]["id"], paid["payment"]["id"]);
    assert_eq!(received[0].body["payment"]["amount"], 600);
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(platform.received().len(), 1, "delivered once");
    assert_eq!(server.get("/health")["outbox"]["undelivered"], 0);
}
