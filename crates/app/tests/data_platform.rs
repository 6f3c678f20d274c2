//! Every payment reaches the data platform (SPEC §1.8, §3): the body, one delivery per
//! payment, retries with the same `event_id`, and nothing lost while the platform is down.
//! Each scenario runs on both stores.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use app::Application;
use common::{closed_port, test_config, Backend, FakePlatform};
use reqwest::Client;
use serde_json::{json, Value};

struct Shop {
    base: String,
    client: Client,
}

async fn spawn_shop(backend: Backend, platform_url: &str) -> Shop {
    let mut config = test_config(backend).await;
    config.admin_token = Some("token".into());
    config.data_platform_url = Some(platform_url.to_owned());
    config.data_platform_timeout_ms = 1_000;
    let app = Application::build(&config).await.expect("the application builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Shop { base, client: Client::new() }
}

impl Shop {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth("token");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the shop answers");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    async fn product(&self, quantity: i64) -> i64 {
        let body = json!({"name": "Tea", "price": 250, "quantity": quantity});
        let created = self.send(reqwest::Method::POST, "/product", Some(body)).await;
        created["product"]["id"].as_i64().expect("id")
    }

    /// Registers `user`, lets them buy `count` units of `product`, and returns the pay answer.
    async fn purchase(&self, user: &str, product: i64, count: i64) -> Value {
        use reqwest::Method;
        self.send(Method::POST, "/user", Some(json!({ "id": user }))).await;
        self.send(Method::PATCH, &format!("/user/{user}/charge"), Some(json!({"amount": 10_000})))
            .await;
        let items = json!([{"product_id": product, "count": count}]);
        self.send(Method::POST, &format!("/order/{user}"), Some(items.clone())).await;
        self.send(Method::POST, &format!("/order/{user}/pay"), Some(items)).await
    }

    async fn outbox(&self) -> Value {
        self.send(reqwest::Method::GET, "/health", None).await["outbox"].clone()
    }
}

async fn each_payment_is_delivered_once_with_the_spec_body(backend: Backend) {
    let platform = FakePlatform::start(&[]);
    let shop = spawn_shop(backend, &platform.url).await;
    let tea = shop.product(10).await;
    let paid = shop.purchase("alice", tea, 3).await;
    let paid_at = Instant::now();

    let received = tokio::task::block_in_place(|| platform.wait_for(1, Duration::from_secs(5)));
    assert!(
        received[0].at.duration_since(paid_at) < Duration::from_secs(1),
        "sent within a second"
    );
    let body = &received[0].body;
    let payment = &paid["payment"];
    assert_eq!(
        body["payment"],
        json!({
            "id": payment["id"], "order_id": payment["order_id"], "user_id": "alice",
            "amount": 750, "paid_at": payment["paid_at"],
            "items": [{"product_id": tea, "count": 3, "price": 250}],
        })
    );
    assert_eq!(body["type"], "payment.completed");
    assert_eq!(body["occurred_at"], payment["paid_at"]);
    let event_id = body["event_id"].as_str().expect("an event id");
    assert_eq!(received[0].idempotency_key.as_deref(), Some(event_id));
    assert_eq!(received[0].content_type.as_deref(), Some("application/json"));

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(platform.received().len(), 1, "one delivery per payment");
    assert_eq!(shop.outbox().await["undelivered"], 0);
}

async fn a_failing_platform_is_retried_with_the_same_event_id(backend: Backend) {
    let platform = FakePlatform::start(&[500, 500]);
    let shop = spawn_shop(backend, &platform.url).await;
    let tea = shop.product(10).await;
    shop.purchase("alice", tea, 1).await;

    let received = tokio::task::block_in_place(|| platform.wait_for(3, Duration::from_secs(10)));
    let ids: HashSet<_> = received.iter().map(|r| r.body["event_id"].clone()).collect();
    assert_eq!(ids.len(), 1, "every retry carries the same event_id");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(platform.received().len(), 3, "no retry after the 204");
    let outbox = shop.outbox().await;
    assert_eq!((outbox["undelivered"].clone(), outbox["failing"].clone()), (json!(0), json!(0)));
}

async fn events_wait_while_the_platform_is_down_and_all_arrive_when_it_is_up(backend: Backend) {
    let port = closed_port();
    let shop = spawn_shop(backend, &format!("http://127.0.0.1:{port}/events")).await;
    let tea = shop.product(100).await;
    let mut payments = HashSet::new();
    for i in 0..20 {
        let paid = shop.purchase(&format!("buyer{i}"), tea, 1).await;
        payments.insert(paid["payment"]["id"].clone());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbox = shop.outbox().await;
    assert_eq!(outbox["undelivered"], 20, "{outbox}");
    assert!(outbox["failing"].as_u64() > Some(0), "{outbox}");
    assert!(outbox["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{outbox}");
    assert!(outbox["oldest_age_secs"].as_f64() > Some(0.0), "{outbox}");

    tokio::time::sleep(Duration::from_secs(5)).await;
    let platform = FakePlatform::start_on_port(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered: HashSet<_> =
            platform.received().iter().map(|r| r.body["payment"]["id"].clone()).collect();
        if delivered == payments {
            break;
        }
        assert!(Instant::now() < deadline, "{} of 20 payments delivered", delivered.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = platform.received();
    let event_ids: HashSet<_> = received.iter().map(|r| r.body["event_id"].clone()).collect();
    assert_eq!(event_ids.len(), 20, "20 distinct event ids");
    assert_eq!(received.len(), 20, "nothing sent twice");
    assert_eq!(shop.outbox().await["undelivered"], 0);
}

on_both_stores!(
    each_payment_is_delivered_once_with_the_spec_body,
    a_failing_platform_is_retried_with_the_same_event_id,
    events_wait_while_the_platform_is_down_and_all_arrive_when_it_is_up,
);
