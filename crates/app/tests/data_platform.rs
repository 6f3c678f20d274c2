//! Every payment reaches the data platform (SPEC §1.8, §3): the body, one delivery per
//! payment, retries with the same `event_id`, and nothing lost while the platform is down.
//! Each scenario runs on both stores, against both publishers: a fake HTTP platform, and a
//! NATS JetStream stream on the local NATS (skipped, saying so, where none answers).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use app::Application;
use common::receiver::{Adapter, Receiver};
use common::{test_config, Backend};
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

async fn each_payment_is_delivered_once_with_the_spec_body(backend: Backend, adapter: Adapter) {
    let Some(platform) = Receiver::up(adapter, 0).await else { return };
    let shop = spawn_shop(backend, &platform.url()).await;
    let tea = shop.product(10).await;
    let paid = shop.purchase("alice", tea, 3).await;
    let paid_at = Instant::now();

    let received = platform.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        received[0].at.duration_since(paid_at) < Duration::from_secs(1),
        "sent within a second"
    );
    let delivered = platform.delivered().await;
    assert_eq!(delivered.len(), 1, "kept by the platform");
    let body = &delivered[0].body;
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
    assert_eq!(delivered[0].idempotency_key.as_deref(), Some(event_id));
    if adapter == Adapter::Http {
        assert_eq!(delivered[0].content_type.as_deref(), Some("application/json"));
    }

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(platform.received().len(), 1, "one delivery per payment");
    assert_eq!(shop.outbox().await["undelivered"], 0);
    platform.close().await;
}

async fn a_failing_platform_is_retried_with_the_same_event_id(backend: Backend, adapter: Adapter) {
    let Some(platform) = Receiver::up(adapter, 2).await else { return };
    let shop = spawn_shop(backend, &platform.url()).await;
    let tea = shop.product(10).await;
    shop.purchase("alice", tea, 1).await;

    let received = platform.wait_for(3, Duration::from_secs(10)).await;
    let ids: HashSet<_> = received.iter().map(|r| r.body["event_id"].clone()).collect();
    assert_eq!(ids.len(), 1, "every retry carries the same event_id");
    let keys: HashSet<_> = received.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 1, "and the same idempotency key");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(platform.received().len(), 3, "no retry after the success");
    assert_eq!(platform.delivered().await.len(), 1, "kept once");
    let outbox = shop.outbox().await;
    assert_eq!((outbox["undelivered"].clone(), outbox["failing"].clone()), (json!(0), json!(0)));
    platform.close().await;
}

async fn events_wait_while_the_platform_is_down_and_all_arrive_when_it_is_up(
    backend: Backend,
    adapter: Adapter,
) {
    let Some(mut platform) = Receiver::down(adapter).await else { return };
    let shop = spawn_shop(backend, &platform.url()).await;
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

    tokio::time::sleep(Duration::from_secs(2)).await;
    platform.come_up().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered: HashSet<_> =
            platform.delivered().await.iter().map(|r| r.body["payment"]["id"].clone()).collect();
        if delivered == payments {
            break;
        }
        assert!(Instant::now() < deadline, "{} of 20 payments delivered", delivered.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = platform.delivered().await;
    let event_ids: HashSet<_> = delivered.iter().map(|r| r.body["event_id"].clone()).collect();
    assert_eq!(event_ids.len(), 20, "20 distinct event ids");
    assert_eq!(delivered.len(), 20, "nothing delivered twice");
    // On NATS a publish between the stream's creation and the tap's subscription is stored
    // but not seen, hence at most.
    assert!(platform.received().len() <= 20, "nothing sent twice once the platform is up");
    assert_eq!(shop.outbox().await["undelivered"], 0);
    platform.close().await;
}

/// NATS unreachable when `mall` starts does not stop it: payments are taken, their events wait,
/// and `/health` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_nats_at_start_leaves_the_service_up_with_the_reason_in_health() {
    let port = common::closed_port();
    let shop = spawn_shop(Backend::Memory, &format!("nats://127.0.0.1:{port}/mall.payments")).await;
    let tea = shop.product(10).await;
    shop.purchase("alice", tea, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outbox = shop.outbox().await;
    assert_eq!(outbox["undelivered"], 1, "{outbox}");
    let last_error = outbox["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains(&format!("NATS 127.0.0.1:{port}: not connected")), "{outbox}");
}

/// Expands `async fn scenario(backend: Backend, adapter: Adapter)` functions into one test
/// per publisher and store: `http::memory::…`, `http::mysql::…`, `nats::memory::…`, ….
macro_rules! on_both_adapters_and_stores {
    ($($scenario:ident),+ $(,)?) => {
        on_both_adapters_and_stores!(@adapter http Http $($scenario)+);
        on_both_adapters_and_stores!(@adapter nats Nats $($scenario)+);
    };
    (@adapter $adapter_mod:ident $adapter:ident $($scenario:ident)+) => {
        mod $adapter_mod {
            on_both_adapters_and_stores!(@store memory Memory $adapter $($scenario)+);
            on_both_adapters_and_stores!(@store mysql Mysql $adapter $($scenario)+);
        }
    };
    (@store $store_mod:ident $backend:ident $adapter:ident $($scenario:ident)+) => {
        mod $store_mod {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    crate::$scenario(
                        crate::common::Backend::$backend,
                        crate::common::receiver::Adapter::$adapter,
                    )
                    .await;
                }
            )+
        }
    };
}

on_both_adapters_and_stores!(
    each_payment_is_delivered_once_with_the_spec_body,
    a_failing_platform_is_retried_with_the_same_event_id,
    events_wait_while_the_platform_is_down_and_all_arrive_when_it_is_up,
);
