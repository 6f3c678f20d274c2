//! Hostile input, generated: random methods, paths, bodies and headers against every route.
//! Whatever arrives, the answer is never a 500, always SPEC JSON with an `errorcode`, and a
//! request that is refused changes nothing.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use actix_web::App;
use domain::support::{ManualClock, SequentialIds};
use domain::{Mall, Settings, Stores};
use http_api::{configure, ApiSettings};
use proptest::prelude::*;
use serde_json::{json, Value};
use store_memory::MemoryStore;

const TOKEN: &str = "hostile-admin-token";

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!(i64::MAX)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("amount".to_owned()),
                    Just("product_id".to_owned()),
                    Just("count".to_owned()),
                    Just("id".to_owned()),
                    Just("name".to_owned()),
                    Just("price".to_owned()),
                    Just("quantity".to_owned()),
                    Just("restock".to_owned()),
                    "\\PC{0,6}",
                ],
                inner,
                0..4
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice".to_owned()),
        Just("1".to_owned()),
        Just("ranked".to_owned()),
        "[a-z0-9._-]{1,70}",
        "\\PC{0,20}".prop_map(|s| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>()),
        "-?[0-9]{1,25}",
        "(\\+|%2B|-|0|00|%20)[0-9]{1,5}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (0..12usize, segment(), "[a-z=&0-9%-]{0,20}").prop_map(|(route, seg, query)| match route {
        0 => format!("/user/{seg}/charge"),
        1 => format!("/user/{seg}/point"),
        2 => format!("/order/{seg}"),
        3 => format!("/order/{seg}/pay"),
        4 => format!("/product/{seg}"),
        5 => format!("/product?{query}"),
        6 => "/user".to_owned(),
        7 => "/product".to_owned(),
        8 => "/product/ranked".to_owned(),
        9 => "/health".to_owned(),
        10 => format!("/{seg}"),
        _ => format!("/user/{seg}"),
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::None),
        json_value().prop_map(Body::Json),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Bytes),
    ]
}

#[derive(Debug, Clone)]
struct Headers {
    content_type: Option<String>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
}

fn headers() -> impl Strategy<Value = Headers> {
    let content_type = prop::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("text/plain".to_owned()),
        Just("application/json; charset=utf-8".to_owned()),
        "[ -~]{0,20}",
    ]);
    let authorization = prop::option::of(prop_oneof![
        Just(format!("Bearer {TOKEN}x")),
        Just("Bearer ".to_owned()),
        "[ -~]{0,40}",
    ]);
    let key = prop::option::of("[ -~]{0,300}");
    (content_type, authorization, key).prop_map(|(content_type, authorization, idempotency_key)| {
        Headers { content_type, authorization, idempotency_key }
    })
}

fn method() -> impl Strategy<Value = actix_web::http::Method> {
    use actix_web::http::Method;
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::PUT),
        Just(Method::DELETE)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_input_gets_a_500_and_a_refusal_changes_nothing(
        method in method(),
        path in path(),
        body in body(),
        headers in headers(),
    ) {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")));
            let stores = Stores::from_one(Arc::new(MemoryStore::new()), clock.clone());
            let mall = Mall::new(stores, clock, Arc::new(SequentialIds::new("id")), Settings::default());
            let app = test::init_service(
                App::new().configure(configure(mall, ApiSettings::open(Some(TOKEN.into())))),
            )
            .await;
            // A shop with a user, a product and a pending form.
            let admin = |r: TestRequest| r.insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")));
            for request in [
                TestRequest::post().uri("/user").set_json(json!({"id": "alice"})),
                TestRequest::patch().uri("/user/alice/charge").set_json(json!({"amount": 1_000})),
                admin(TestRequest::post().uri("/product").set_json(json!({"name": "Tea", "price": 100, "quantity": 5}))),
                TestRequest::post().uri("/order/alice").set_json(json!([{"product_id": 1, "count": 2}])),
            ] {
                assert!(test::call_service(&app, request.to_request()).await.status().is_success());
            }
            let snapshot = |app| async move {
                let mut state = Vec::new();
                for uri in ["/user/alice/point", "/product?limit=100", "/order/alice", "/product/ranked", "/health"] {
                    let response = test::call_service(app, TestRequest::get().uri(uri).to_request()).await;
                    state.push(test::read_body(response).await);
                }
                state
            };
            let before = snapshot(&app).await;

            let mut request = TestRequest::default().method(method.clone()).uri(&path);
            if let Some(value) = &headers.content_type {
                if let Ok(value) = header::HeaderValue::from_str(value) {
                    request = request.insert_header((header::CONTENT_TYPE, value));
                }
            }
            if let Some(value) = &headers.authorization {
                if let Ok(value) = header::HeaderValue::from_str(value) {
                    request = request.insert_header((header::AUTHORIZATION, value));
                }
            }
            if let Some(value) = &headers.idempotency_key {
                if let Ok(value) = header::HeaderValue::from_str(value) {
                    request = request.insert_header(("Idempotency-Key", value));
                }
            }
            request = match &body {
                Body::None => request,
                Body::Json(value) => request.set_payload(value.to_string()),
                Body::Bytes(bytes) => request.set_payload(bytes.clone()),
            };
            let response = test::call_service(&app, request.to_request()).await;
            let status = response.status();
            let answer = test::read_body(response).await;
            let case = format!("{method} {path} {body:?} {headers:?} -> {status} {answer:?}");
            assert!(status.as_u16() < 500, "{case}");
            let json: Value = serde_json::from_slice(&answer).unwrap_or_else(|_| panic!("not JSON: {case}"));
            assert!(json["errorcode"].is_u64(), "{case}");
            if !status.is_success() {
                assert_eq!(snapshot(&app).await, before, "a refused request changed state: {case}");
            }
        });
    }

    /// A product id in a path is a positive integer in canonical decimal, or a 400: never a
    /// sign, a leading zero or anything else that `str::parse` would forgive.
    #[test]
    fn a_product_id_that_is_not_canonical_digits_is_400(
        seg in "(\\+|%2B|-|0|00|%20|x)?[0-9]{1,20}(\\.0|e0|%20|_)?",
        patch in any::<bool>(),
    ) {
        let canonical = !seg.is_empty()
            && seg.bytes().all(|b| b.is_ascii_digit())
            && !seg.starts_with('0')
            && seg.parse::<i64>().is_ok();
        prop_assume!(!canonical);
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")));
            let stores = Stores::from_one(Arc::new(MemoryStore::new()), clock.clone());
            let mall = Mall::new(stores, clock, Arc::new(SequentialIds::new("id")), Settings::default());
            let app = test::init_service(
                App::new().configure(configure(mall, ApiSettings::open(Some(TOKEN.into())))),
            )
            .await;
            let tea = TestRequest::post()
                .uri("/product")
                .insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
                .set_json(json!({"name": "Tea", "price": 100, "quantity": 5}));
            assert!(test::call_service(&app, tea.to_request()).await.status().is_success());
            let path = format!("/product/{seg}");
            let request = if patch {
                TestRequest::patch()
                    .uri(&path)
                    .insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
                    .set_json(json!({"restock": 1}))
            } else {
                TestRequest::get().uri(&path)
            };
            let response = test::call_service(&app, request.to_request()).await;
            let status = response.status().as_u16();
            let body: Value = serde_json::from_slice(&test::read_body(response).await).expect("JSON");
            assert_eq!((status, body["errorcode"].clone()), (400, json!(1)), "{path}: {body}");
        });
    }
}
