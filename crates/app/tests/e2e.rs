//! End to end: the real application on a free port, driven over HTTP by a real client, with
//! the concurrency SPEC §1.7 demands. Every scenario runs on both stores: in memory and on a
//! fresh MariaDB database.

use std::time::{Duration, Instant};

mod common;

use app::{Application, Config};
use chrono::{DateTime, Utc};
use common::{test_config, Backend};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;

const TOKEN: &str = "test-admin-token";

struct TestApp {
    base: String,
    client: Client,
    database_url: Option<String>,
}

async fn spawn_app(backend: Backend, order_ttl_secs: u32) -> TestApp {
    let mut config = test_config(backend).await;
    config.admin_token = Some(TOKEN.into());
    config.order_ttl_secs = order_ttl_secs;
    let app = Application::build(&config).await.expect("the application builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp { base, client: Client::new(), database_url: config.database_url }
}

impl TestApp {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if path == "/product" || path.starts_with("/product/") {
            request = request.bearer_auth(TOKEN);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn user(&self, id: &str, points: i64) {
        assert_eq!(self.post("/user", json!({ "id": id })).await.0, StatusCode::CREATED);
        if points > 0 {
            let (status, _) =
                self.patch(&format!("/user/{id}/charge"), json!({ "amount": points })).await;
            assert_eq!(status, StatusCode::OK);
        }
    }

    async fn product(&self, price: i64, quantity: i64) -> i64 {
        let body = json!({"name": "Flash sale item", "price": price, "quantity": quantity});
        let (status, body) = self.post("/product", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["product"]["id"].as_i64().expect("an id")
    }

    async fn quantity(&self, product: i64) -> i64 {
        self.get(&format!("/product/{product}")).await.1["product"]["quantity"]
            .as_i64()
            .expect("quantity")
    }

    async fn balance(&self, user: &str) -> i64 {
        self.get(&format!("/user/{user}/point")).await.1["amount"].as_i64().expect("amount")
    }
}

async fn a_whole_purchase_over_real_http(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    let (status, health) = app.get("/health").await;
    assert_eq!(
        (status, health["errorcode"].clone(), health["status"].clone()),
        (StatusCode::OK, json!(0), json!("ok"))
    );
    app.user("alice", 5_000).await;
    let tea = app.product(1_000, 5).await;
    let items = json!([{"product_id": tea, "count": 3}]);
    let (status, order) = app.post("/order/alice", items.clone()).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let (status, paid) = app.post("/order/alice/pay", items).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["amount"], 2_000);
    assert_eq!(paid["payment"]["order_id"], order["order"]["id"]);
    let (_, ranked) = app.get("/product/ranked").await;
    assert_eq!(ranked["products"][0]["id"], tea);
    assert_eq!(ranked["products"][0]["sold"], 3);
    assert_eq!(ranked["products"][0]["quantity"], 2);
}

async fn a_hundred_concurrent_orders_against_stock_10_accept_exactly_10(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    let item = app.product(10, 10).await;
    for i in 0..100 {
        app.user(&format!("buyer{i}"), 1_000).await;
    }
    let mut orders = JoinSet::new();
    for i in 0..100 {
        let (client, url) = (app.client.clone(), format!("{}/order/buyer{i}", app.base));
        orders.spawn(async move {
            let response =
                client.post(url).json(&json!([{"product_id": item, "count": 1}])).send().await;
            let response = response.expect("answer");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON")["errorcode"].clone())
        });
    }
    let (mut accepted, mut sold_out) = (0, 0);
    while let Some(answer) = orders.join_next().await {
        match answer.expect("task") {
            (StatusCode::OK, code) if code == 0 => accepted += 1,
            (StatusCode::CONFLICT, code) if code == 4 => sold_out += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((accepted, sold_out), (10, 90));
    assert_eq!(app.quantity(item).await, 0);
}

async fn two_hundred_concurrent_charges_add_exactly_200(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    app.user("alice", 0).await;
    let mut charges = JoinSet::new();
    for _ in 0..200 {
        let (client, url) = (app.client.clone(), format!("{}/user/alice/charge", app.base));
        charges.spawn(async move {
            client.patch(url).json(&json!({"amount": 1})).send().await.expect("answer").status()
        });
    }
    while let Some(status) = charges.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
    assert_eq!(app.balance("alice").await, 200);
}

/// Alice pays `items` twenty times at once, with `key` or without; the answers.
async fn twenty_concurrent_pays(
    app: &TestApp,
    items: &Value,
    key: Option<&str>,
) -> Vec<(StatusCode, Value)> {
    let mut pays = JoinSet::new();
    for _ in 0..20 {
        let mut request = app.client.post(format!("{}/order/alice/pay", app.base)).json(items);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        pays.spawn(async move {
            let response = request.send().await.expect("answer");
            let status = response.status();
            (status, response.json::<Value>().await.expect("JSON"))
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = pays.join_next().await {
        answers.push(answer.expect("task"));
    }
    answers
}

async fn twenty_concurrent_pays_of_one_form_succeed_once_and_debit_once(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    app.user("alice", 10_000).await;
    let item = app.product(700, 5).await;
    let items = json!([{"product_id": item, "count": 2}]);
    assert_eq!(app.post("/order/alice", items.clone()).await.0, StatusCode::OK);
    let mut paid = 0;
    for (status, body) in twenty_concurrent_pays(&app, &items, None).await {
        match (status, body["errorcode"].clone()) {
            (StatusCode::OK, code) if code == 0 => paid += 1,
            (StatusCode::NOT_FOUND, code) if code == 5 => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(paid, 1);
    assert_eq!(app.balance("alice").await, 10_000 - 1_400);
    assert_eq!(app.quantity(item).await, 3);
}

async fn forty_concurrent_orders_by_one_user_leave_one_form_and_no_leak(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    app.user("alice", 1_000_000).await;
    let item = app.product(10, 100).await;
    let mut orders = JoinSet::new();
    for count in 1..=40 {
        let (client, url) = (app.client.clone(), format!("{}/order/alice", app.base));
        orders.spawn(async move {
            client
                .post(url)
                .json(&json!([{"product_id": item, "count": count}]))
                .send()
                .await
                .expect("answer")
                .status()
        });
    }
    while let Some(status) = orders.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::OK, "every replacement fits the stock");
    }
    let (status, pending) = app.get("/order/alice").await;
    assert_eq!(status, StatusCode::OK);
    let held = pending["order"]["items"][0]["count"].as_i64().expect("count");
    assert_eq!(app.quantity(item).await, 100 - held, "only the surviving form holds stock");
}

async fn an_expired_form_gives_its_stock_back_within_two_seconds(backend: Backend) {
    let app = spawn_app(backend, 1).await;
    app.user("alice", 1_000).await;
    let item = app.product(10, 5).await;
    let items = json!([{"product_id": item, "count": 3}]);
    let (status, order) = app.post("/order/alice", items.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let expires_at: DateTime<Utc> =
        order["order"]["expires_at"].as_str().expect("time").parse().expect("RFC 3339");
    assert_eq!(app.quantity(item).await, 2);

    let deadline = Instant::now() + Duration::from_secs(5);
    while app.quantity(item).await != 5 {
        assert!(Instant::now() < deadline, "the stock never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late_by = Utc::now() - expires_at;
    assert!(late_by.num_milliseconds() <= 2_000, "stock came back {late_by} after the expiry");
    let (status, body) = app.post("/order/alice/pay", items).await;
    assert_eq!((status, body["errorcode"].clone()), (StatusCode::NOT_FOUND, json!(5)));
    assert_eq!(app.balance("alice").await, 1_000);
}

async fn send_with_key(app: &TestApp, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("answer");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

async fn a_retried_payment_is_charged_once(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    app.user("alice", 10_000).await;
    let item = app.product(700, 5).await;
    let items = json!([{"product_id": item, "count": 2}]);
    assert_eq!(app.post("/order/alice", items.clone()).await.0, StatusCode::OK);

    let mut bodies = Vec::new();
    for answer in twenty_concurrent_pays(&app, &items, Some("pay-once")).await {
        match answer {
            (StatusCode::OK, body) => bodies.push(body),
            (StatusCode::CONFLICT, body) if body["errorcode"] == 1 => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(!bodies.is_empty());
    assert!(bodies.iter().all(|b| *b == bodies[0]), "every success is the same answer");
    assert_eq!(app.balance("alice").await, 10_000 - 1_400, "charged once");

    let (status, replay) = send_with_key(&app, "/order/alice/pay", "pay-once", &items).await;
    assert_eq!((status, &replay), (StatusCode::OK, &bodies[0]), "a retry after the fact replays");
    let other = json!([{"product_id": item, "count": 1}]);
    let (status, body) = send_with_key(&app, "/order/alice/pay", "pay-once", &other).await;
    assert_eq!((status, body["errorcode"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!(1)));
    assert_eq!(app.balance("alice").await, 10_000 - 1_400);
}

async fn retried_charges_and_orders_replay_their_first_answer(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    app.user("alice", 0).await;
    let item = app.product(100, 10).await;
    let amount = json!({"amount": 500});
    let charge = |key: &'static str| {
        let request = app.client.patch(format!("{}/user/alice/charge", app.base));
        request.header("Idempotency-Key", key).json(&amount).send()
    };
    let first: Value = charge("c-1").await.expect("answer").json().await.expect("JSON");
    let again: Value = charge("c-1").await.expect("answer").json().await.expect("JSON");
    assert_eq!((first["amount"].clone(), again), (json!(500), first.clone()));
    assert_eq!(app.balance("alice").await, 500, "charged once");

    let three = json!([{"product_id": item, "count": 3}]);
    let (status, ordered) = send_with_key(&app, "/order/alice", "o-1", &three).await;
    assert_eq!(status, StatusCode::OK);
    let (_, replaced) = app.post("/order/alice", json!([{"product_id": item, "count": 1}])).await;
    let (status, replay) = send_with_key(&app, "/order/alice", "o-1", &three).await;
    assert_eq!((status, replay), (StatusCode::OK, ordered), "the first answer, not a new order");
    let (_, pending) = app.get("/order/alice").await;
    assert_eq!(pending["order"]["id"], replaced["order"]["id"], "the retry did not order again");
    assert_eq!(app.quantity(item).await, 9);

    let (status, body) = send_with_key(&app, "/order/alice", "bad key", &three).await;
    assert_eq!((status, body["errorcode"].clone()), (StatusCode::BAD_REQUEST, json!(1)));
}

async fn metrics_show_requests_and_business_counters(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    app.user("alice", 1_000).await;
    let item = app.product(100, 1).await;
    let items = json!([{"product_id": item, "count": 1}]);
    app.post("/order/alice", items.clone()).await;
    app.post("/order/alice", json!([{"product_id": item, "count": 5}])).await;
    app.post("/order/alice/pay", items).await;
    let response = app.client.get(format!("{}/metrics", app.base)).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    for series in [
        r#"http_requests_total{method="POST",route="/order/{user_id}",status="200"} 1"#,
        r#"http_requests_total{method="POST",route="/order/{user_id}",status="409"} 1"#,
        r#"http_request_duration_seconds_bucket{method="POST",route="/order/{user_id}/pay",le="#,
        r#"mall_orders_total{result="ok"} 1"#,
        r#"mall_orders_total{result="errorcode_4"} 1"#,
        r#"mall_payments_total{result="ok"} 1"#,
        "mall_points_charged_total 1000",
        "mall_points_paid_total 100",
        "mall_outbox_undelivered",
        "mall_outbox_oldest_age_seconds",
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    if matches!(backend, Backend::Mysql) {
        assert!(text.contains("db_pool_connections"), "pool gauges:\n{text}");
        assert!(text.contains("db_pool_wait_seconds_bucket"), "pool waits:\n{text}");
    }
}

async fn ready_reports_the_database_the_migrations_and_the_relay(backend: Backend) {
    let app = spawn_app(backend, 600).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, body) = app.get("/ready").await;
        if status == StatusCode::OK {
            break body;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((body["errorcode"].clone(), body["status"].clone()), (json!(0), json!("ready")));
    for check in ["database", "migrations", "relay"] {
        assert_eq!(body["checks"][check]["ok"], true, "{body}");
    }
    assert_eq!(body["checks"]["migrations"]["pending"], 0);
}

on_both_stores!(
    a_whole_purchase_over_real_http,
    a_hundred_concurrent_orders_against_stock_10_accept_exactly_10,
    two_hundred_concurrent_charges_add_exactly_200,
    twenty_concurrent_pays_of_one_form_succeed_once_and_debit_once,
    forty_concurrent_orders_by_one_user_leave_one_form_and_no_leak,
    an_expired_form_gives_its_stock_back_within_two_seconds,
    a_retried_payment_is_charged_once,
    retried_charges_and_orders_replay_their_first_answer,
    metrics_show_requests_and_business_counters,
    ready_reports_the_database_the_migrations_and_the_relay,
);

/// A database a migration behind is not ready: `/ready` says 503 and names the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_migration_makes_the_instance_not_ready() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, MysqlConnection};

    let app = spawn_app(Backend::Mysql, 600).await;
    let url = app.database_url.clone().expect("a MySQL app");
    let mut conn = MysqlConnection::establish(&url).expect("connect");
    conn.batch_execute("DELETE FROM __diesel_schema_migrations ORDER BY version DESC LIMIT 1")
        .expect("forget the last migration");
    let (status, body) = app.get("/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["errorcode"], 7);
    assert_eq!(body["checks"]["migrations"], json!({"ok": false, "pending": 1}));
    assert_eq!(app.get("/health").await.0, StatusCode::OK, "liveness is not readiness");
}

/// The database disappears under a running server: `/health` and every store call answer 503,
/// code 7, and nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_answers_503_code_7() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, MysqlConnection, QueryableByName};

    #[derive(QueryableByName)]
    struct Session {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }

    let admin_url = store_mysql::testing::server_url();
    let database = tokio::task::spawn_blocking(store_mysql::testing::fresh_database_url)
        .await
        .expect("a fresh database");
    let name = database.rsplit('/').next().expect("a database name").to_owned();
    let user = format!("u{}", &name[name.len().saturating_sub(12)..]);
    let mut admin = MysqlConnection::establish(&admin_url).expect("admin connection");
    admin
        .batch_execute(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; \
             GRANT ALL ON `{name}`.* TO '{user}'@'%'; \
             CREATE USER '{user}'@'localhost' IDENTIFIED BY 'pw'; \
             GRANT ALL ON `{name}`.* TO '{user}'@'localhost'"
        ))
        .expect("a test user");
    let (scheme_host, _) = admin_url.split_once("root@").expect("a root URL");
    let host = admin_url.rsplit('@').next().expect("a host");
    let url = format!("{scheme_host}{user}:pw@{host}/{name}");

    let mut config = Config::defaults();
    config.bind = "127.0.0.1:0".into();
    config.database_url = Some(url);
    config.data_platform_url = None;
    config.db_timeout_ms = 300;
    let app = Application::build(&config).await.expect("builds on the database");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = Client::new();
    let health = client.get(format!("{base}/health")).send().await.expect("answer");
    assert_eq!(health.status(), StatusCode::OK);

    admin
        .batch_execute(&format!("DROP USER '{user}'@'%'; DROP USER '{user}'@'localhost'"))
        .expect("drop the user");
    let sessions: Vec<Session> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT id FROM information_schema.processlist WHERE user = '{user}'"
        )),
        &mut admin,
    )
    .expect("list sessions");
    for session in sessions {
        let _ = admin.batch_execute(&format!("KILL {}", session.id));
    }

    for path in ["/health", "/ready", "/user/alice/point", "/product/1", "/product/ranked"] {
        let response = client.get(format!("{base}{path}")).send().await.expect("answer");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            (status, body["errorcode"].clone()),
            (StatusCode::SERVICE_UNAVAILABLE, json!(7)),
            "{path}: {body}"
        );
        let shown = body.to_string();
        for cause in [user.as_str(), "denied", "@"] {
            assert!(!shown.contains(cause), "{path} shows the cause {cause:?}: {body}");
        }
        if path == "/ready" {
            assert_eq!(body["failing"][0], "database", "/ready names the failing check: {body}");
        }
    }
}

/// `MALL_JWT_SECRET` turns authentication on for user calls in the real application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_secret_closes_the_user_calls() {
    let mut config = test_config(Backend::Memory).await;
    config.jwt_secret = Some("a-secret-for-the-e2e-test-32-bytes!!".into());
    let app = Application::build(&config).await.expect("builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let response =
        Client::new().get(format!("{base}/user/alice/point")).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let public = Client::new().get(format!("{base}/product/ranked")).send().await.expect("answer");
    assert_eq!(public.status(), StatusCode::OK);

    config.jwt_secret = Some("too-short".into());
    assert!(Application::build(&config).await.is_err(), "a weak secret is refused at start");
}
