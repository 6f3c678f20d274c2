//! Every endpoint of SPEC §2 through actix's test service, over the real in-memory store:
//! success bodies, every error code and status, and actix's own rejections as SPEC JSON.

use std::sync::Arc;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::App;
use chrono::{DateTime, TimeDelta};
use domain::ports::{MockHealthProbe, MockUserRepository};
use domain::support::{ManualClock, SequentialIds};
use domain::{Mall, Settings, Stores};
use http_api::{configure, ApiSettings};
use serde_json::{json, Value};
use store_memory::MemoryStore;

const TOKEN: &str = "s3cret-admin";

struct Shop {
    clock: Arc<ManualClock>,
    mall: Mall,
}

fn shop() -> Shop {
    let clock =
        Arc::new(ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")));
    let stores = Stores::from_one(Arc::new(MemoryStore::new()), clock.clone());
    let mall =
        Mall::new(stores, clock.clone(), Arc::new(SequentialIds::new("id")), Settings::default());
    Shop { clock, mall }
}

async fn service(
    mall: Mall,
    token: Option<&str>,
) -> impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error> {
    let settings = ApiSettings::open(token.map(str::to_owned));
    test::init_service(App::new().configure(configure(mall, settings))).await
}

/// Sends a request and returns the status and the JSON body; fails unless the answer is JSON.
async fn send<S, B>(app: &S, request: TestRequest) -> (StatusCode, Value)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = test::read_body(response).await;
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{status} answered {body:?} without a JSON content type"
    );
    let json = serde_json::from_slice(&body).expect("the body is JSON");
    (status, json)
}

fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path)
}

fn with_json(method: Method, path: &str, body: Value) -> TestRequest {
    TestRequest::default().method(method).uri(path).set_json(body)
}

fn post(path: &str, body: Value) -> TestRequest {
    with_json(Method::POST, path, body)
}

fn patch(path: &str, body: Value) -> TestRequest {
    with_json(Method::PATCH, path, body)
}

fn admin(request: TestRequest) -> TestRequest {
    request.insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
}

/// Asserts an error answer: status, errorcode and a human message.
#[track_caller]
fn assert_error((status, body): (StatusCode, Value), want_status: u16, want_code: u64) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["errorcode"], want_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// A shop with alice (balance 10 000), tea (id 1, price 1 000, stock 10) and cake (id 2,
/// price 500, stock 2).
async fn stocked<S, B>(app: &S)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    assert_eq!(send(app, post("/user", json!({"id": "alice"}))).await.0, StatusCode::CREATED);
    assert_eq!(send(app, patch("/user/alice/charge", json!({"amount": 10_000}))).await.0, 200);
    for (name, price, quantity) in [("Tea", 1_000, 10), ("Cake", 500, 2)] {
        let body = json!({"name": name, "price": price, "quantity": quantity});
        assert_eq!(send(app, admin(post("/product", body))).await.0, StatusCode::CREATED);
    }
}

#[actix_web::test]
async fn register_answers_201_and_refuses_duplicates_and_bad_ids() {
    let app = service(shop().mall, None).await;
    let (status, body) = send(&app, post("/user", json!({"id": "alice"}))).await;
    assert_eq!((status, body), (StatusCode::CREATED, json!({"errorcode": 0, "amount": 0})));
    assert_error(send(&app, post("/user", json!({"id": "alice"}))).await, 409, 1);
    assert_error(send(&app, post("/user", json!({"id": "a b"}))).await, 400, 1);
    assert_error(send(&app, post("/user", json!({"id": ""}))).await, 400, 1);
    assert_error(send(&app, post("/user", json!({"id": "x".repeat(65)}))).await, 400, 1);
    assert_error(send(&app, post("/user", json!({"id": 7}))).await, 400, 1);
    assert_error(send(&app, post("/user", json!({}))).await, 400, 1);
}

#[actix_web::test]
async fn charge_and_point_follow_the_seed() {
    let app = service(shop().mall, None).await;
    send(&app, post("/user", json!({"id": "alice"}))).await;
    let (status, body) = send(&app, patch("/user/alice/charge", json!({"amount": 1000}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"errorcode": 0, "amount": 1000})));
    let (status, body) = send(&app, get("/user/alice/point")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"errorcode": 0, "amount": 1000})));

    assert_error(send(&app, patch("/user/bob/charge", json!({"amount": 1}))).await, 404, 1);
    assert_error(send(&app, get("/user/bob/point")).await, 404, 1);
    assert_error(send(&app, get("/user/bad%20id/point")).await, 400, 1);
    assert_error(send(&app, patch("/user/bad%20id/charge", json!({"amount": 1}))).await, 400, 1);
}

#[actix_web::test]
async fn charge_rejects_bad_amounts_with_code_2_and_wrong_types_with_code_1() {
    let app = service(shop().mall, None).await;
    send(&app, post("/user", json!({"id": "alice"}))).await;
    send(&app, patch("/user/alice/charge", json!({"amount": 5}))).await;
    for amount in
        [json!(0), json!(-5), json!(1.5), json!(1e30), json!(9_223_372_036_854_775_808u64)]
    {
        assert_error(
            send(&app, patch("/user/alice/charge", json!({ "amount": amount }))).await,
            400,
            2,
        );
    }
    for amount in [json!("100"), json!(null), json!([1])] {
        assert_error(
            send(&app, patch("/user/alice/charge", json!({ "amount": amount }))).await,
            400,
            1,
        );
    }
    let overflow = json!({"amount": i64::MAX});
    assert_error(send(&app, patch("/user/alice/charge", overflow)).await, 400, 2);
    // Shape comes before existence: a bad amount for an unknown user is still code 2.
    assert_error(send(&app, patch("/user/ghost/charge", json!({"amount": 0}))).await, 400, 2);
    let (_, body) = send(&app, get("/user/alice/point")).await;
    assert_eq!(body["amount"], 5, "no rejected charge changed the balance");
}

#[actix_web::test]
async fn product_lookup_and_catalog_pages() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    let (status, body) = send(&app, get("/product/1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"errorcode": 0, "product": {"id": 1, "name": "Tea", "price": 1000, "quantity": 10}})
    );
    assert_error(send(&app, get("/product/99")).await, 404, 1);
    for bad in ["/product/abc", "/product/0", "/product/-1", "/product/99999999999999999999"] {
        assert_error(send(&app, get(bad)).await, 400, 1);
    }

    let (status, body) = send(&app, get("/product?offset=1&limit=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 2);
    assert_eq!(body["products"], json!([{"id": 2, "name": "Cake", "price": 500, "quantity": 2}]));
    let (_, body) = send(&app, get("/product")).await;
    assert_eq!(body["products"].as_array().map(Vec::len), Some(2), "defaults: offset 0, limit 20");
    let (status, _) = send(&app, get("/product?limit=1000")).await;
    assert_eq!(status, StatusCode::OK, "a limit above 100 is treated as 100");
    for bad in ["/product?limit=0", "/product?offset=-1", "/product?limit=abc"] {
        assert_error(send(&app, get(bad)).await, 400, 1);
    }
}

/// Numbers in paths and query strings are written one way: digits only, no sign, no leading
/// zero (as JSON writes them), so `/product/+1` and `/product/01` are not aliases of product 1.
#[actix_web::test]
async fn ids_and_page_numbers_are_canonical_digits() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    for bad in ["+1", "%2B1", "01", "007", "00", "%201", "1%20", "1.0", "1e0", "0x1", "%EF%BC%91"] {
        let path = format!("/product/{bad}");
        assert_error(send(&app, get(&path)).await, 400, 1);
        assert_error(send(&app, admin(patch(&path, json!({"restock": 1})))).await, 400, 1);
    }
    let (status, body) = send(&app, get("/product/1")).await;
    assert_eq!(
        (status, body["product"]["quantity"].clone()),
        (StatusCode::OK, json!(10)),
        "{body}"
    );
    let (status, _) = send(&app, get("/product/9223372036854775807")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the largest id is an id");

    let past_i64 = ["offset=9223372036854775808", "limit=9223372036854775808"];
    let past_u64 = ["offset=18446744073709551616", "limit=99999999999999999999"];
    for bad in ["limit=%2B1", "offset=%2B1", "limit=01", "offset=00", "offset=01", "limit=1.0"]
        .into_iter()
        .chain(past_i64)
        .chain(past_u64)
    {
        assert_error(send(&app, get(&format!("/product?{bad}"))).await, 400, 1);
    }
    let largest = "offset=9223372036854775807&limit=9223372036854775807";
    for good in ["offset=0&limit=1", "offset=1", "limit=100", largest] {
        assert_eq!(send(&app, get(&format!("/product?{good}"))).await.0, StatusCode::OK, "{good}");
    }
}

/// The fields of an edit are left out, never `null` (the description says they are not
/// nullable): `{"name": null, "price": 5}` is a malformed body, and changes nothing.
#[actix_web::test]
async fn an_edit_with_a_null_field_is_malformed() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    for body in
        [json!({"name": null, "price": 5}), json!({"restock": null}), json!({"price": null})]
    {
        assert_error(send(&app, admin(patch("/product/1", body))).await, 400, 1);
    }
    let (_, body) = send(&app, get("/product/1")).await;
    assert_eq!(body["product"], json!({"id": 1, "name": "Tea", "price": 1000, "quantity": 10}));
}

/// A number with a zero fraction or an exponent is the whole number it writes, as JSON Schema's
/// `integer` reads it (ADR 0008); a fraction or a value past 64 bits is still code 2.
#[actix_web::test]
async fn whole_numbers_written_as_floats_count() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    let (status, body) = send(&app, patch("/user/alice/charge", json!({"amount": 1e3}))).await;
    assert_eq!((status, body["amount"].clone()), (StatusCode::OK, json!(11_000)), "{body}");
    let items = json!([{"product_id": 2.0, "count": 2.0}]);
    let (status, body) = send(&app, post("/order/alice", items)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["order"]["items"], json!([{"product_id": 2, "count": 2, "price": 500}]));
    for amount in [json!(2.5), json!(9.3e18)] {
        let answer = send(&app, patch("/user/alice/charge", json!({"amount": amount}))).await;
        assert_error(answer, 400, 2);
    }
}

/// A known route with another method answers 405 with `Allow` naming the route's methods
/// (RFC 9110), in the SPEC's JSON.
#[actix_web::test]
async fn wrong_methods_answer_405_with_allow() {
    let app = service(shop().mall, Some(TOKEN)).await;
    for (method, path, allow) in [
        (Method::DELETE, "/user/alice/point", "GET"),
        (Method::TRACE, "/product/1", "GET, PATCH"),
        (Method::PUT, "/product", "GET, POST"),
        (Method::GET, "/user/alice/charge", "PATCH"),
        (Method::HEAD, "/order/alice/pay", "POST"),
        (Method::OPTIONS, "/health", "GET"),
    ] {
        let request = TestRequest::default().method(method.clone()).uri(path).to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let header = response.headers().get(header::ALLOW).and_then(|v| v.to_str().ok());
        assert_eq!(header, Some(allow), "{method} {path}");
        if method != Method::HEAD {
            let body: Value = test::read_body_json(response).await;
            assert_eq!(body["errorcode"], 1, "{body}");
        }
    }
}

#[actix_web::test]
async fn catalog_caps_pages_at_100() {
    let app = service(shop().mall, Some(TOKEN)).await;
    for i in 0..105 {
        let body = json!({"name": format!("Item {i}"), "price": 1, "quantity": 1});
        send(&app, admin(post("/product", body))).await;
    }
    let (_, body) = send(&app, get("/product?limit=500")).await;
    assert_eq!(body["products"].as_array().map(Vec::len), Some(100));
    assert_eq!(body["total"], 105);
}

#[actix_web::test]
async fn admin_calls_need_the_token_and_check_it_before_the_body() {
    let app = service(shop().mall, Some(TOKEN)).await;
    let product = json!({"name": "Tea", "price": 10, "quantity": 1});
    assert_error(send(&app, post("/product", product.clone())).await, 401, 6);
    let wrong =
        post("/product", product.clone()).insert_header((header::AUTHORIZATION, "Bearer nope"));
    assert_error(send(&app, wrong).await, 401, 6);
    let basic = post("/product", product.clone())
        .insert_header((header::AUTHORIZATION, format!("Basic {TOKEN}")));
    assert_error(send(&app, basic).await, 401, 6);
    let garbage = TestRequest::post()
        .uri("/product")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload("{oops");
    assert_error(send(&app, garbage).await, 401, 6);
    assert_error(send(&app, patch("/product/1", json!({"restock": 1}))).await, 401, 6);
    let (_, catalog) = send(&app, get("/product")).await;
    assert_eq!(catalog["total"], 0, "no rejected call added a product");

    let disabled = service(shop().mall, None).await;
    assert_error(send(&disabled, admin(post("/product", product))).await, 403, 6);
}

#[actix_web::test]
async fn add_and_edit_products() {
    let app = service(shop().mall, Some(TOKEN)).await;
    let (status, body) =
        send(&app, admin(post("/product", json!({"name": " Tea ", "price": 10, "quantity": 0}))))
            .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({"errorcode": 0, "product": {"id": 1, "name": "Tea", "price": 10, "quantity": 0}})
    );

    assert_error(
        send(&app, admin(post("/product", json!({"name": "X", "price": 0, "quantity": 1})))).await,
        400,
        2,
    );
    assert_error(
        send(&app, admin(post("/product", json!({"name": "X", "price": 1, "quantity": -1})))).await,
        400,
        2,
    );
    assert_error(
        send(&app, admin(post("/product", json!({"name": "  ", "price": 1, "quantity": 1})))).await,
        400,
        1,
    );
    assert_error(
        send(&app, admin(post("/product", json!({"price": 1, "quantity": 1})))).await,
        400,
        1,
    );

    let (status, body) = send(
        &app,
        admin(patch("/product/1", json!({"name": "Green tea", "price": 12, "restock": 5}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["product"], json!({"id": 1, "name": "Green tea", "price": 12, "quantity": 5}));
    assert_error(send(&app, admin(patch("/product/1", json!({"restock": 0})))).await, 400, 2);
    assert_error(send(&app, admin(patch("/product/1", json!({"price": -3})))).await, 400, 2);
    assert_error(
        send(&app, admin(patch("/product/1", json!({"restock": i64::MAX})))).await,
        400,
        2,
    );
    assert_error(send(&app, admin(patch("/product/1", json!({})))).await, 400, 1);
    assert_error(send(&app, admin(patch("/product/9", json!({"restock": 1})))).await, 404, 1);
    assert_error(send(&app, admin(patch("/product/x", json!({"restock": 1})))).await, 400, 1);
    let (_, body) = send(&app, get("/product/1")).await;
    assert_eq!(body["product"]["quantity"], 5, "rejected edits changed nothing");
}

#[actix_web::test]
async fn order_reserves_stock_and_shows_the_form() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    let items = json!([{"product_id": 1, "count": 2}, {"product_id": 2, "count": 1}, {"product_id": 1, "count": 1}]);
    let (status, body) = send(&app, post("/order/alice", items)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errorcode"], 0);
    let order = &body["order"];
    assert_eq!(order["total"], 3_500);
    assert_eq!(order["expires_at"], "2027-01-15T08:10:00.000Z");
    assert_eq!(
        order["items"],
        json!([
            {"product_id": 1, "count": 3, "price": 1000},
            {"product_id": 2, "count": 1, "price": 500},
        ])
    );
    assert!(order["id"].as_str().is_some_and(|id| !id.is_empty()));
    let (_, product) = send(&app, get("/product/1")).await;
    assert_eq!(product["product"]["quantity"], 7, "reserved units are not available");

    let (status, pending) = send(&app, get("/order/alice")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending["order"], *order);
}

#[actix_web::test]
async fn order_errors_follow_the_spec_order() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    send(&app, post("/user", json!({"id": "poor"}))).await;
    let one = |p: i64, c: i64| json!([{"product_id": p, "count": c}]);

    assert_error(send(&app, post("/order/ghost", one(1, 1))).await, 404, 1);
    assert_error(send(&app, post("/order/alice", one(99, 1))).await, 404, 1);
    assert_error(send(&app, post("/order/alice", one(0, 1))).await, 400, 1);
    assert_error(send(&app, post("/order/alice", one(1, 0))).await, 400, 2);
    assert_error(send(&app, post("/order/alice", one(1, -1))).await, 400, 2);
    assert_error(send(&app, post("/order/alice", json!([]))).await, 400, 1);
    assert_error(
        send(&app, post("/order/alice", json!({"product_id": 1, "count": 1}))).await,
        400,
        1,
    );
    assert_error(
        send(&app, post("/order/alice", json!([{"product_id": "1", "count": 1}]))).await,
        400,
        1,
    );
    assert_error(send(&app, post("/order/bad%20id", one(1, 1))).await, 400, 1);
    // Shape before existence: an unknown user with a zero count is code 2.
    assert_error(send(&app, post("/order/ghost", one(1, 0))).await, 400, 2);
    // Existence before state.
    assert_error(
        send(
            &app,
            post(
                "/order/poor",
                json!([{"product_id": 1, "count": 50}, {"product_id": 99, "count": 1}]),
            ),
        )
        .await,
        404,
        1,
    );
    assert_error(send(&app, post("/order/alice", one(2, 3))).await, 409, 4);
    assert_error(send(&app, post("/order/poor", one(1, 1))).await, 409, 3);
    // Stock before points.
    assert_error(send(&app, post("/order/poor", one(1, 11))).await, 409, 4);
    // Totals that overflow are code 2.
    let huge = json!([{"product_id": 1, "count": i64::MAX}]);
    assert_error(send(&app, post("/order/alice", huge)).await, 400, 2);

    assert_error(send(&app, get("/order/alice")).await, 404, 5);
    assert_error(send(&app, get("/order/ghost")).await, 404, 1);
    let (_, product) = send(&app, get("/product/1")).await;
    assert_eq!(product["product"]["quantity"], 10, "no rejected order reserved anything");
}

#[actix_web::test]
async fn a_new_order_replaces_the_pending_one() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    send(&app, post("/order/alice", json!([{"product_id": 2, "count": 2}]))).await;
    let (status, body) =
        send(&app, post("/order/alice", json!([{"product_id": 2, "count": 2}]))).await;
    assert_eq!(status, StatusCode::OK, "the old form's units count for the new order: {body}");
    assert_error(
        send(&app, post("/order/alice", json!([{"product_id": 2, "count": 3}]))).await,
        409,
        4,
    );
    let (_, pending) = send(&app, get("/order/alice")).await;
    assert_eq!(pending["order"]["id"], body["order"]["id"], "a failed order keeps the old form");
}

#[actix_web::test]
async fn pay_settles_the_form_once() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    let (_, placed) = send(
        &app,
        post("/order/alice", json!([{"product_id": 1, "count": 2}, {"product_id": 2, "count": 1}])),
    )
    .await;

    assert_error(
        send(&app, post("/order/alice/pay", json!([{"product_id": 1, "count": 2}]))).await,
        400,
        1,
    );
    assert_error(
        send(
            &app,
            post(
                "/order/alice/pay",
                json!([{"product_id": 1, "count": 3}, {"product_id": 2, "count": 1}]),
            ),
        )
        .await,
        400,
        1,
    );
    assert_error(
        send(&app, post("/order/ghost/pay", json!([{"product_id": 1, "count": 2}]))).await,
        404,
        1,
    );
    assert_error(
        send(&app, post("/order/alice/pay", json!([{"product_id": 1, "count": 0}]))).await,
        400,
        2,
    );

    let items = json!([{"product_id": 2, "count": 1}, {"product_id": 1, "count": 1}, {"product_id": 1, "count": 1}]);
    let (status, body) = send(&app, post("/order/alice/pay", items.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errorcode"], 0);
    assert_eq!(body["amount"], 7_500, "the balance after");
    let payment = &body["payment"];
    assert_eq!(payment["order_id"], placed["order"]["id"]);
    assert_eq!(payment["amount"], 2_500);
    assert_eq!(payment["paid_at"], "2027-01-15T08:00:00.000Z");
    assert!(payment["id"].as_str().is_some_and(|id| !id.is_empty()));

    assert_error(send(&app, post("/order/alice/pay", items)).await, 404, 5);
    assert_error(send(&app, get("/order/alice")).await, 404, 5);
    let (_, point) = send(&app, get("/user/alice/point")).await;
    assert_eq!(point["amount"], 7_500, "debited once");
    let (_, tea) = send(&app, get("/product/1")).await;
    assert_eq!(tea["product"]["quantity"], 8, "sold units stay sold");
}

#[actix_web::test]
async fn pay_without_any_form_is_code_5() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    assert_error(
        send(&app, post("/order/alice/pay", json!([{"product_id": 1, "count": 1}]))).await,
        404,
        5,
    );
}

#[actix_web::test]
async fn an_expired_form_cannot_be_paid_and_its_stock_returns_on_the_sweep() {
    let shop = shop();
    let (clock, mall) = (shop.clock.clone(), shop.mall.clone());
    let app = service(shop.mall, Some(TOKEN)).await;
    stocked(&app).await;
    send(&app, post("/order/alice", json!([{"product_id": 2, "count": 2}]))).await;
    clock.advance(TimeDelta::seconds(599));
    assert_eq!(send(&app, get("/order/alice")).await.0, StatusCode::OK);
    clock.advance(TimeDelta::seconds(1));
    assert_error(send(&app, get("/order/alice")).await, 404, 5);
    assert_error(
        send(&app, post("/order/alice/pay", json!([{"product_id": 2, "count": 2}]))).await,
        404,
        5,
    );
    let (_, point) = send(&app, get("/user/alice/point")).await;
    assert_eq!(point["amount"], 10_000);

    assert_eq!(mall.expire_due_forms(100).await.expect("sweep"), 1);
    let (_, cake) = send(&app, get("/product/2")).await;
    assert_eq!(cake["product"]["quantity"], 2);
}

#[actix_web::test]
async fn ranking_lists_paid_units_best_first() {
    let shop = shop();
    let clock = shop.clock.clone();
    let app = service(shop.mall, Some(TOKEN)).await;
    stocked(&app).await;
    let (_, empty) = send(&app, get("/product/ranked")).await;
    assert_eq!(empty, json!({"errorcode": 0, "products": []}));

    let items = json!([{"product_id": 1, "count": 2}, {"product_id": 2, "count": 2}]);
    send(&app, post("/order/alice", items.clone())).await;
    send(&app, post("/order/alice/pay", items)).await;
    send(&app, post("/order/alice", json!([{"product_id": 1, "count": 1}]))).await;
    let (_, cached) = send(&app, get("/product/ranked")).await;
    assert_eq!(cached, empty, "the ranking is reused for up to a second");
    clock.advance(TimeDelta::seconds(1));
    let (status, body) = send(&app, get("/product/ranked")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["products"],
        json!([
            {"id": 1, "name": "Tea", "price": 1000, "quantity": 7, "sold": 2},
            {"id": 2, "name": "Cake", "price": 500, "quantity": 0, "sold": 2},
        ]),
        "ties by id; the unpaid order does not count"
    );
}

#[actix_web::test]
async fn health_is_200_and_503_when_the_store_is_down() {
    let app = service(shop().mall, None).await;
    let (status, body) = send(&app, get("/health")).await;
    let idle = json!({"undelivered": 0, "failing": 0, "oldest_age_secs": null, "last_error": null});
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"errorcode": 0, "status": "ok", "outbox": idle}))
    );

    let mut probe = MockHealthProbe::new();
    probe.expect_check().returning(|| Err(anyhow::anyhow!("database unreachable")));
    let shop = shop();
    let mut stores = Stores::from_one(Arc::new(MemoryStore::new()), shop.clock.clone());
    stores.health = Arc::new(probe);
    let mall =
        Mall::new(stores, shop.clock, Arc::new(SequentialIds::new("id")), Settings::default());
    let down = service(mall, None).await;
    let (status, body) = send(&down, get("/health")).await;
    assert!(!body.to_string().contains("unreachable"), "the cause is logged, not shown: {body}");
    assert_error((status, body), 503, 7);
}

/// `/health` is public: the outbox's last error is shown, but not the URL in it, which may
/// name an internal host or carry credentials.
#[actix_web::test]
async fn health_shows_the_last_delivery_error_without_the_platform_url() {
    for (stored, shown) in [
        (
            "POST http://mall:hunter2@platform.internal:9000/events: Connection refused (os error 111)",
            "POST <url>: Connection refused (os error 111)",
        ),
        ("timed out (reaching nats://10.1.2.3:4222/payments)", "timed out (reaching <url>)"),
        ("the data platform answered HTTP 503", "the data platform answered HTTP 503"),
    ] {
        let mut outbox = domain::ports::MockOutbox::new();
        outbox.expect_backlog().returning(move || {
            Ok(domain::model::OutboxBacklog {
                undelivered: 1,
                failing: 1,
                oldest: None,
                last_error: Some(stored.to_owned()),
            })
        });
        let shop = shop();
        let mut stores = Stores::from_one(Arc::new(MemoryStore::new()), shop.clock.clone());
        stores.outbox = Arc::new(outbox);
        let mall =
            Mall::new(stores, shop.clock, Arc::new(SequentialIds::new("id")), Settings::default());
        let (status, body) = send(&service(mall, None).await, get("/health")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["outbox"]["last_error"], shown, "{body}");
    }
}

#[actix_web::test]
async fn a_failing_store_answers_503_code_7_without_details() {
    let mut users = MockUserRepository::new();
    users.expect_balance().returning(|_| Err(anyhow::anyhow!("secret connection string")));
    let shop = shop();
    let mut stores = Stores::from_one(Arc::new(MemoryStore::new()), shop.clock.clone());
    stores.users = Arc::new(users);
    let mall =
        Mall::new(stores, shop.clock, Arc::new(SequentialIds::new("id")), Settings::default());
    let app = service(mall, None).await;
    let (status, body) = send(&app, get("/user/alice/point")).await;
    assert_error((status, body.clone()), 503, 7);
    assert!(!body.to_string().contains("secret"), "causes are logged, not shown: {body}");
}

#[actix_web::test]
async fn actix_rejections_come_back_as_spec_json() {
    let app = service(shop().mall, Some(TOKEN)).await;
    send(&app, post("/user", json!({"id": "alice"}))).await;

    let malformed = TestRequest::patch()
        .uri("/user/alice/charge")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload("{\"amount\": ");
    assert_error(send(&app, malformed).await, 400, 1);
    let empty = TestRequest::patch()
        .uri("/user/alice/charge")
        .insert_header((header::CONTENT_TYPE, "application/json"));
    assert_error(send(&app, empty).await, 400, 1);
    let text = TestRequest::patch()
        .uri("/user/alice/charge")
        .insert_header((header::CONTENT_TYPE, "text/plain"))
        .set_payload("{\"amount\": 1}");
    assert_error(send(&app, text).await, 415, 1);
    let no_type = TestRequest::patch().uri("/user/alice/charge").set_payload("{\"amount\": 1}");
    assert_error(send(&app, no_type).await, 415, 1);
    let big = format!("{{\"amount\": 1, \"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let too_large = TestRequest::patch()
        .uri("/user/alice/charge")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(big);
    assert_error(send(&app, too_large).await, 413, 1);
    let lines: Vec<Value> = (0..3_000).map(|i| json!({"product_id": i + 1, "count": 1})).collect();
    assert_error(send(&app, post("/order/alice", Value::Array(lines))).await, 413, 1);

    assert_error(send(&app, get("/nowhere")).await, 404, 1);
    assert_error(send(&app, TestRequest::delete().uri("/user/alice/point")).await, 405, 1);
    assert_error(send(&app, get("/user/alice/charge")).await, 405, 1);
    let (_, point) = send(&app, get("/user/alice/point")).await;
    assert_eq!(point["amount"], 0, "no rejected request changed the balance");
}

#[actix_web::test]
async fn health_shows_payment_events_waiting_for_the_data_platform() {
    let shop = shop();
    let clock = shop.clock.clone();
    let app = service(shop.mall, Some(TOKEN)).await;
    stocked(&app).await;
    let items = json!([{"product_id": 1, "count": 1}]);
    send(&app, post("/order/alice", items.clone())).await;
    send(&app, post("/order/alice/pay", items)).await;
    clock.advance(TimeDelta::milliseconds(2_500));
    let (status, body) = send(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK, "a backlog is not an outage");
    assert_eq!(
        body["outbox"],
        json!({"undelivered": 1, "failing": 0, "oldest_age_secs": 2.5, "last_error": null})
    );
}

#[actix_web::test]
async fn unknown_fields_and_absurd_counts_are_refused() {
    let app = service(shop().mall, Some(TOKEN)).await;
    stocked(&app).await;
    let cases = [
        (post("/user", json!({"id": "bob", "balance": 1_000_000})), 400, 1),
        (patch("/user/alice/charge", json!({"amount": 1, "currency": "KRW"})), 400, 1),
        (post("/order/alice", json!([{"product_id": 1, "count": 1, "price": 1}])), 400, 1),
        (admin(post("/product", json!({"name": "X", "price": 1, "quantity": 1, "id": 9}))), 400, 1),
        (admin(patch("/product/1", json!({"stock": 5}))), 400, 1),
        (post("/order/alice", json!([{"product_id": 1, "count": 1_000_001}])), 400, 2),
    ];
    for (request, status, code) in cases {
        assert_error(send(&app, request).await, status, code);
    }
    let (_, point) = send(&app, get("/user/alice/point")).await;
    assert_eq!(point["amount"], 10_000, "no refused request changed anything");
    assert_error(send(&app, get("/user/bob/point")).await, 404, 1);
}

/// A probe that answers after a pause longer than the request time limit.
struct SlowProbe;

#[async_trait::async_trait]
impl domain::ports::HealthProbe for SlowProbe {
    async fn check(&self) -> anyhow::Result<()> {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        Ok(())
    }
}

#[actix_web::test]
async fn a_request_that_takes_too_long_answers_503_code_7() {
    let shop = shop();
    let mut stores = Stores::from_one(Arc::new(MemoryStore::new()), shop.clock.clone());
    stores.health = Arc::new(SlowProbe);
    let mall =
        Mall::new(stores, shop.clock, Arc::new(SequentialIds::new("id")), Settings::default());
    let settings = http_api::ApiSettings {
        request_timeout: std::time::Duration::from_millis(100),
        ..http_api::ApiSettings::open(None)
    };
    let app = test::init_service(
        App::new()
            .wrap(actix_web::middleware::from_fn(http_api::enforce_timeout))
            .configure(configure(mall, settings)),
    )
    .await;
    // Middleware errors become responses in the server's dispatcher; here, by hand.
    let error = test::try_call_service(&app, get("/health").to_request())
        .await
        .err()
        .expect("the middleware gives up");
    let response = error.error_response();
    assert_eq!(response.status().as_u16(), 503);
    let body = actix_web::body::to_bytes(response.into_body()).await.expect("a body");
    let body: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["errorcode"], 7, "{body}");
}

#[actix_web::test]
async fn every_answer_carries_a_request_id() {
    let app = test::init_service(
        App::new()
            .wrap(actix_web::middleware::from_fn(http_api::request_context))
            .configure(configure(shop().mall, http_api::ApiSettings::open(None))),
    )
    .await;
    let id_of = |response: &ServiceResponse<_>| {
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let fresh = test::call_service(&app, get("/health").to_request()).await;
    let fresh_id = id_of(&fresh).expect("an id");
    assert_eq!(fresh_id.len(), 36, "a UUID: {fresh_id}");
    let other = test::call_service(&app, get("/nowhere").to_request()).await;
    assert_ne!(id_of(&other), Some(fresh_id), "one id per request, errors included");
    let given = get("/health").insert_header(("X-Request-Id", "trace-42.a_b"));
    let echoed = test::call_service(&app, given.to_request()).await;
    assert_eq!(id_of(&echoed).as_deref(), Some("trace-42.a_b"));
    let hostile = get("/health").insert_header(("X-Request-Id", "no spaces or \"quotes\""));
    let replaced = test::call_service(&app, hostile.to_request()).await;
    assert_eq!(id_of(&replaced).map(|id| id.len()), Some(36), "an unsafe id is replaced");
}
