//! Who may call what, for every endpoint: no token, a bad signature, an expired token, another
//! user's token, a token signed with another algorithm, the user's own token, and admins.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::test::{self, TestRequest};
use actix_web::App;
use domain::support::{ManualClock, SequentialIds};
use domain::{Mall, Settings, Stores};
use http_api::{configure, ApiSettings, Authenticator, JwtKey, JwtSettings, RateLimit, RateLimits};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use store_memory::MemoryStore;

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes";
const ADMIN_TOKEN: &str = "the-admin-token";
// A throwaway Ed25519 pair for the EdDSA test.
const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFH55o6wEoA+Mmc+t7gnYxE/aLCr+/kt+HQYzXKI+717\n-----END PRIVATE KEY-----\n";
const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA1tOLUrDPzgdynO4CpheXxYQd2ajqGXGV7d8GcYPQFNs=\n-----END PUBLIC KEY-----\n";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs()
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn token_for(sub: &str) -> String {
    hs256(&json!({"sub": sub, "exp": now() + 600}), SECRET)
}

fn mall() -> Mall {
    let clock = std::sync::Arc::new(ManualClock::new(chrono::Utc::now()));
    let stores = Stores::from_one(std::sync::Arc::new(MemoryStore::new()), clock.clone());
    Mall::new(stores, clock, std::sync::Arc::new(SequentialIds::new("id")), Settings::default())
}

async fn app_with(
    settings: ApiSettings,
) -> impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error> {
    test::init_service(App::new().configure(configure(mall(), settings))).await
}

fn jwt_settings(key: JwtKey) -> ApiSettings {
    let jwt = JwtSettings { key, issuer: None, audience: None };
    ApiSettings {
        auth: Authenticator::new(Some(ADMIN_TOKEN.into()), Some(jwt)).expect("valid key"),
        ..ApiSettings::open(None)
    }
}

async fn call<S, B>(
    app: &S,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut request = TestRequest::default().method(method).uri(path);
    if let Some(body) = body {
        request = request.set_json(body);
    }
    if let Some(token) = token {
        request = request.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
    }
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status().as_u16();
    let body = test::read_body(response).await;
    (status, serde_json::from_slice(&body).expect("a JSON body"))
}

/// Every endpoint that acts for a user or an admin, with a valid body for user `alice`.
fn guarded() -> Vec<(Method, &'static str, Option<Value>, bool)> {
    let items = json!([{"product_id": 1, "count": 1}]);
    vec![
        (Method::POST, "/user", Some(json!({"id": "alice"})), false),
        (Method::PATCH, "/user/alice/charge", Some(json!({"amount": 10})), false),
        (Method::GET, "/user/alice/point", None, false),
        (Method::POST, "/order/alice", Some(items.clone()), false),
        (Method::GET, "/order/alice", None, false),
        (Method::POST, "/order/alice/pay", Some(items), false),
        (Method::POST, "/product", Some(json!({"name": "Tea", "price": 1, "quantity": 1})), true),
        (Method::PATCH, "/product/1", Some(json!({"restock": 1})), true),
    ]
}

#[actix_web::test]
async fn the_auth_matrix_holds_for_every_endpoint() {
    let app = app_with(jwt_settings(JwtKey::Secret(SECRET.into()))).await;
    let expired = hs256(&json!({"sub": "alice", "exp": now() - 3_600}), SECRET);
    let forged =
        hs256(&json!({"sub": "alice", "exp": now() + 600}), "another-secret-of-32-bytes-or-more!!");
    let no_exp = hs256(&json!({"sub": "alice"}), SECRET);
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({"sub": "alice", "exp": now() + 600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    let unsigned = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", "eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0"
    );
    let bob = token_for("bob");
    let admin_jwt = hs256(&json!({"sub": "ops", "exp": now() + 600, "role": "admin"}), SECRET);

    for (method, path, body, admin_only) in guarded() {
        let case = format!("{method} {path}");
        for (token, why) in [
            (None, "no token"),
            (Some(expired.as_str()), "expired"),
            (Some(forged.as_str()), "bad signature"),
            (Some(no_exp.as_str()), "no exp"),
            (Some(hs512.as_str()), "another algorithm"),
            (Some(unsigned.as_str()), "alg none"),
            (Some("garbage"), "not a JWT"),
        ] {
            let (status, answer) = call(&app, method.clone(), path, body.clone(), token).await;
            assert_eq!(
                (status, answer["errorcode"].clone()),
                (401, json!(6)),
                "{case}, {why}: {answer}"
            );
        }
        let (status, answer) = call(&app, method.clone(), path, body.clone(), Some(&bob)).await;
        assert_eq!(
            (status, answer["errorcode"].clone()),
            (403, json!(6)),
            "{case}, bob's token: {answer}"
        );

        let alice = token_for("alice");
        let (status, answer) = call(&app, method.clone(), path, body.clone(), Some(&alice)).await;
        if admin_only {
            assert_eq!(
                (status, answer["errorcode"].clone()),
                (403, json!(6)),
                "{case}, a user: {answer}"
            );
        } else {
            assert!(status != 401 && status != 403, "{case}, alice herself: {status} {answer}");
        }
        for admin in [ADMIN_TOKEN, admin_jwt.as_str()] {
            let (status, answer) =
                call(&app, method.clone(), path, body.clone(), Some(admin)).await;
            assert!(status != 401 && status != 403, "{case}, an admin: {status} {answer}");
        }
    }
}

#[actix_web::test]
async fn a_user_acts_only_as_themself_through_a_whole_purchase() {
    let app = app_with(jwt_settings(JwtKey::Secret(SECRET.into()))).await;
    let alice = token_for("alice");
    let admin = Some(ADMIN_TOKEN);
    call(
        &app,
        Method::POST,
        "/product",
        Some(json!({"name": "Tea", "price": 10, "quantity": 5})),
        admin,
    )
    .await;
    assert_eq!(
        call(&app, Method::POST, "/user", Some(json!({"id": "alice"})), Some(&alice)).await.0,
        201
    );
    assert_eq!(
        call(&app, Method::PATCH, "/user/alice/charge", Some(json!({"amount": 100})), Some(&alice))
            .await
            .0,
        200
    );
    let items = json!([{"product_id": 1, "count": 2}]);
    assert_eq!(
        call(&app, Method::POST, "/order/alice", Some(items.clone()), Some(&alice)).await.0,
        200
    );
    let (status, paid) =
        call(&app, Method::POST, "/order/alice/pay", Some(items), Some(&alice)).await;
    assert_eq!((status, paid["amount"].clone()), (200, json!(80)));
    let bob = token_for("bob");
    let (status, _) = call(&app, Method::GET, "/user/alice/point", None, Some(&bob)).await;
    assert_eq!(status, 403);
    for public in ["/product/1", "/product", "/product/ranked", "/health"] {
        assert_eq!(call(&app, Method::GET, public, None, None).await.0, 200, "{public} is public");
    }
}

#[actix_web::test]
async fn eddsa_public_keys_verify_and_pin_the_algorithm() {
    let app = app_with(jwt_settings(JwtKey::PublicKeyPem(ED_PUBLIC.into()))).await;
    let claims = json!({"sub": "alice", "exp": now() + 600});
    let signed = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).expect("a private key"),
    )
    .expect("sign");
    call(&app, Method::POST, "/user", Some(json!({"id": "alice"})), Some(ADMIN_TOKEN)).await;
    let (status, body) = call(&app, Method::GET, "/user/alice/point", None, Some(&signed)).await;
    assert_eq!((status, body["amount"].clone()), (200, json!(0)), "{body}");
    // An HS256 token "signed" with the public key as secret: the classic confusion attack.
    let confused = hs256(&claims, ED_PUBLIC);
    assert_eq!(call(&app, Method::GET, "/user/alice/point", None, Some(&confused)).await.0, 401);
}

#[actix_web::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let jwt = JwtSettings {
        key: JwtKey::Secret(SECRET.into()),
        issuer: Some("https://id.example".into()),
        audience: Some("mall".into()),
    };
    let settings = ApiSettings {
        auth: Authenticator::new(None, Some(jwt)).expect("key"),
        ..ApiSettings::open(None)
    };
    let app = app_with(settings).await;
    let good = hs256(
        &json!({"sub": "alice", "exp": now() + 60, "iss": "https://id.example", "aud": "mall"}),
        SECRET,
    );
    let wrong_iss = hs256(
        &json!({"sub": "alice", "exp": now() + 60, "iss": "https://evil", "aud": "mall"}),
        SECRET,
    );
    let no_aud =
        hs256(&json!({"sub": "alice", "exp": now() + 60, "iss": "https://id.example"}), SECRET);
    assert_eq!(
        call(&app, Method::GET, "/user/alice/point", None, Some(&good)).await.0,
        404,
        "passes auth; alice is unknown"
    );
    assert_eq!(call(&app, Method::GET, "/user/alice/point", None, Some(&wrong_iss)).await.0, 401);
    assert_eq!(call(&app, Method::GET, "/user/alice/point", None, Some(&no_aud)).await.0, 401);
}

/// `nbf` (not before) is enforced when a token has one, with the same 5 s leeway as `exp`; a
/// token without `nbf` is still accepted.
#[actix_web::test]
async fn a_token_not_yet_valid_is_refused() {
    let app = app_with(jwt_settings(JwtKey::Secret(SECRET.into()))).await;
    call(&app, Method::POST, "/user", Some(json!({"id": "alice"})), Some(ADMIN_TOKEN)).await;
    let token = |extra: Value| {
        let mut claims = json!({"sub": "alice", "exp": now() + 3_600});
        claims.as_object_mut().expect("an object").extend(extra.as_object().expect("").clone());
        hs256(&claims, SECRET)
    };
    for (nbf, why) in [
        (json!({"nbf": now() + 600}), "nbf ten minutes ahead"),
        (json!({"nbf": now() + 60}), "nbf past the leeway"),
        (json!({"nbf": "soon"}), "nbf not a number"),
    ] {
        let (status, answer) =
            call(&app, Method::GET, "/user/alice/point", None, Some(&token(nbf))).await;
        assert_eq!((status, answer["errorcode"].clone()), (401, json!(6)), "{why}: {answer}");
    }
    for (nbf, why) in [
        (json!({}), "no nbf"),
        (json!({"nbf": now() - 60}), "nbf in the past"),
        (json!({"nbf": now() + 2}), "nbf within the leeway"),
    ] {
        let (status, answer) =
            call(&app, Method::GET, "/user/alice/point", None, Some(&token(nbf))).await;
        assert_eq!((status, answer["amount"].clone()), (200, json!(0)), "{why}: {answer}");
    }
    // An admin JWT is held to the same rule.
    let early_admin = token(json!({"role": "admin", "nbf": now() + 600}));
    let edit = Some(json!({"restock": 1}));
    assert_eq!(call(&app, Method::PATCH, "/product/1", edit, Some(&early_admin)).await.0, 401);
}

#[actix_web::test]
async fn weak_secrets_and_bad_keys_are_refused_at_start() {
    let weak = JwtSettings { key: JwtKey::Secret("short".into()), issuer: None, audience: None };
    assert!(Authenticator::new(None, Some(weak)).is_err());
    let junk = JwtSettings {
        key: JwtKey::PublicKeyPem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
        ),
        issuer: None,
        audience: None,
    };
    assert!(Authenticator::new(None, Some(junk)).is_err());
}

#[actix_web::test]
async fn too_many_calls_answer_429_with_retry_after() {
    let limit = RateLimit { per_second: 1.try_into().expect("1"), burst: 3.try_into().expect("3") };
    let settings = ApiSettings {
        rate_limits: Some(std::sync::Arc::new(RateLimits::new(limit))),
        ..ApiSettings::open(None)
    };
    let app = app_with(settings).await;
    let peer = "10.0.0.7:5000".parse::<std::net::SocketAddr>().expect("address");
    let charge = || {
        TestRequest::patch()
            .uri("/user/alice/charge")
            .peer_addr(peer)
            .set_json(json!({"amount": 1}))
            .to_request()
    };
    for _ in 0..3 {
        let response = test::call_service(&app, charge()).await;
        assert_eq!(response.status().as_u16(), 404, "within the burst: alice is unknown");
    }
    let response = test::call_service(&app, charge()).await;
    assert_eq!(response.status().as_u16(), 429);
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(retry_after.as_deref(), Some("1"));
    let body: Value = serde_json::from_slice(&test::read_body(response).await).expect("JSON");
    assert_eq!(body["errorcode"], 7);
    let reads = TestRequest::get().uri("/user/alice/point").peer_addr(peer).to_request();
    assert_eq!(
        test::call_service(&app, reads).await.status().as_u16(),
        404,
        "reads are not limited"
    );
    let other = TestRequest::patch()
        .uri("/user/alice/charge")
        .peer_addr("10.0.0.8:5000".parse().expect("address"))
        .set_json(json!({"amount": 1}))
        .to_request();
    assert_eq!(
        test::call_service(&app, other).await.status().as_u16(),
        404,
        "another client has its own budget"
    );
}
