//! The OpenAPI 3 description of every route in [`crate::routes`].
//!
//! The annotated functions below give each operation its parameters, body and success answer
//! (from the DTOs the handlers use). [`openapi`] then completes the document from the code
//! itself, so that the two cannot drift apart:
//!
//! - every failure an operation can answer, from [`failures`]: each is an [`ApiError`] built by
//!   the same extractor, value type or `From` conversion the handler goes through, grouped by
//!   status, each status with a schema naming exactly its `errorcode` values;
//! - the patterns of ids, names and keys, from [`crate::dto::rules`] (checked against the
//!   parsers by this module's tests);
//! - the headers answers carry, and the links from the calls that create users, products and
//!   orders to the calls that use them (for clients and for stateful testing).
//!
//! `tests/openapi.rs` in `app` checks that the document and the router list the same routes.

#![allow(dead_code, clippy::unused_async)]

use std::collections::{BTreeMap, BTreeSet};

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::ResponseError;
use domain::errors::{
    BalanceError, ChargeError, EditProductError, PayError, PendingOrderError, PlaceOrderError,
    ProductLookupError, RegisterError,
};
use domain::idempotency::{IdempotencyError, InvalidIdempotencyKey};
use domain::model::OrderItemsError;
use domain::values::{
    AmountError, InvalidProductId, InvalidProductName, InvalidUserId, ProductId, UserId,
};
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::auth::Caller;
use crate::dto::{
    rules, AmountBody, CatalogBody, ChargeRequest, EditProductRequest, HealthBody, ItemRequest,
    NewProductRequest, OrderBody, OrderDto, OrderLineDto, OutboxHealth, PageQuery, PayBody,
    PaymentDto, ProductBody, ProductDto, RankedBody, RankedDto, RegisterRequest, Success,
};
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::limits::{RateLimit, RateLimits};
use crate::JSON_LIMIT_BYTES;

/// The annotations; [`openapi`] is the document served.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "mall",
        description = "An e-commerce order service: points, a catalog with exact stock, orders that \
                       reserve stock until they expire, payments, best sellers. Every response \
                       carries `errorcode` (0 = success); errors also carry `message`. Each \
                       error answer lists the codes it can carry.",
    ),
    paths(
        health, register, charge, point, ranked, catalog, add_product, product, edit_product,
        order, pending_order, pay
    ),
    components(schemas(
        ErrorCode, ErrorResponse, AmountBody, CatalogBody, ChargeRequest, EditProductRequest,
        HealthBody, ItemRequest, NewProductRequest, OrderBody, OrderDto, OrderLineDto,
        OutboxHealth, PayBody, PaymentDto, ProductBody, ProductDto, RankedBody, RankedDto,
        RegisterRequest
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "points", description = "Users and their point balances"),
        (name = "catalog", description = "Products, stock and best sellers"),
        (name = "orders", description = "Order forms and payments"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

/// The API's description: [`ApiDoc`] completed by [`describe`].
pub fn openapi() -> Value {
    describe(ApiDoc::openapi())
}

/// `doc` (this API's annotations, and any merged into them) as the JSON to serve, completed
/// with every failure, constraint, header and link of this API's operations. JSON rather than
/// utoipa's types: utoipa 5 writes a link's fields in snake case (`operation_id`), which no
/// client reads.
pub fn describe(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| unreachable!());
    complete(&mut doc);
    doc
}

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

const USER_ID: &str = "1-64 characters of [A-Za-z0-9._-]";
const PRODUCT_ID: &str = "a positive 64-bit integer, digits only, no leading zero";
const IDEMPOTENCY_KEY: &str = "1-255 visible ASCII characters; a retry with the same key \
                               replays the first answer for 24 h";

/// Liveness: the store answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    description = "200 while the store answers, with the data-platform backlog.",
    responses((status = 200, description = "the store answers", body = Success<HealthBody>)))]
async fn health() {}

/// Register a user.
#[utoipa::path(post, path = "/user", tag = "points", request_body = RegisterRequest,
    security((), ("bearer" = [])),
    responses((status = 201, description = "registered with 0 points", body = Success<AmountBody>)))]
async fn register() {}

/// Charge points.
#[utoipa::path(patch, path = "/user/{user_id}/charge", tag = "points",
    params(("user_id" = String, Path, description = USER_ID),
           ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body = ChargeRequest, security((), ("bearer" = [])),
    responses((status = 200, description = "the balance after", body = Success<AmountBody>)))]
async fn charge() {}

/// Read the balance.
#[utoipa::path(get, path = "/user/{user_id}/point", tag = "points",
    params(("user_id" = String, Path, description = USER_ID)), security((), ("bearer" = [])),
    responses((status = 200, description = "the balance", body = Success<AmountBody>)))]
async fn point() {}

/// Best sellers.
#[utoipa::path(get, path = "/product/ranked", tag = "catalog",
    description = "Units sold in paid orders over the rolling window, best first, ties by id.",
    responses((status = 200, description = "the best sellers", body = Success<RankedBody>)))]
async fn ranked() {}

/// A catalog page.
#[utoipa::path(get, path = "/product", tag = "catalog", params(PageQuery),
    responses(
        (status = 200, description = "a page by id ascending; limit above 100 is 100", body = Success<CatalogBody>),
    ))]
async fn catalog() {}

/// Add a product (admin).
#[utoipa::path(post, path = "/product", tag = "catalog", request_body = NewProductRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "the new product", body = Success<ProductBody>)))]
async fn add_product() {}

/// Look a product up.
#[utoipa::path(get, path = "/product/{product_id}", tag = "catalog",
    params(("product_id" = i64, Path, description = PRODUCT_ID, minimum = 1)),
    responses(
        (status = 200, description = "quantity is the available stock", body = Success<ProductBody>),
    ))]
async fn product() {}

/// Edit or restock a product (admin).
#[utoipa::path(patch, path = "/product/{product_id}", tag = "catalog",
    params(("product_id" = i64, Path, description = PRODUCT_ID, minimum = 1)),
    request_body = EditProductRequest, security(("bearer" = [])),
    responses((status = 200, description = "the product after the edit", body = Success<ProductBody>)))]
async fn edit_product() {}

/// Order: reserve stock and create the order form.
#[utoipa::path(post, path = "/order/{user_id}", tag = "orders",
    params(("user_id" = String, Path, description = USER_ID),
           ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = Vec<ItemRequest>,
                 description = "1 or more lines; lines naming the same product are summed"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the order form; the stock is reserved until expires_at", body = Success<OrderBody>),
    ))]
async fn order() {}

/// The pending order form.
#[utoipa::path(get, path = "/order/{user_id}", tag = "orders",
    params(("user_id" = String, Path, description = USER_ID)), security((), ("bearer" = [])),
    responses((status = 200, description = "the pending order form", body = Success<OrderBody>)))]
async fn pending_order() {}

/// Pay the pending order form.
#[utoipa::path(post, path = "/order/{user_id}/pay", tag = "orders",
    params(("user_id" = String, Path, description = USER_ID),
           ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = Vec<ItemRequest>,
                 description = "the pending form's products and counts, in any order"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the payment and the balance after", body = Success<PayBody>),
    ))]
async fn pay() {}

// ---------------------------------------------------------------------------------------------
// Failures: what each operation can answer besides success, built by the code that answers it.

/// One way a call can fail: the answer, and when it is given.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: ApiError,
    pub when: &'static str,
}

fn failure(error: impl Into<ApiError>, when: &'static str) -> Failure {
    Failure { error: error.into(), when }
}

fn user() -> UserId {
    UserId::parse("alice").unwrap_or_else(|_| unreachable!())
}

fn product_id() -> ProductId {
    ProductId::new(1).unwrap_or_else(|_| unreachable!())
}

/// Any call: the store is down, or the call took longer than `MALL_REQUEST_TIMEOUT_MS`.
fn unavailable() -> Vec<Failure> {
    vec![failure(
        ApiError::timed_out(),
        "the store is unreachable, or the call took too long; retry after Retry-After",
    )]
}

/// A JSON body, read by `web::Json` with [`crate::configure`]'s error handler.
fn json_body() -> Vec<Failure> {
    let malformed = serde_json::from_str::<u8>("{").map_or_else(
        |error| ApiError::from(&JsonPayloadError::Deserialize(error)),
        |_| unreachable!(),
    );
    vec![
        failure(
            malformed,
            "the body is not JSON of the described shape: a wrong type, a missing, unknown or null field",
        ),
        failure(
            &JsonPayloadError::Overflow { limit: JSON_LIMIT_BYTES },
            "the body is larger than 64 KiB",
        ),
        failure(&JsonPayloadError::ContentType, "Content-Type is missing or not application/json"),
    ]
}

/// A `{user_id}` in the path, parsed by [`UserId::parse`].
fn user_path() -> Vec<Failure> {
    vec![failure(InvalidUserId, "the user id is not 1-64 characters of [A-Za-z0-9._-]")]
}

/// A `{product_id}` in the path, parsed by [`crate::routes::product_id`].
fn product_path() -> Vec<Failure> {
    let error = crate::routes::product_id("0").map_or_else(|e| e, |_| unreachable!());
    vec![failure(error, "the product id is not a positive 64-bit integer in digits")]
}

/// An optional `Idempotency-Key`.
fn idempotency_header() -> Vec<Failure> {
    vec![failure(InvalidIdempotencyKey, "Idempotency-Key is not 1-255 visible ASCII characters")]
}

/// A user call ([`Caller`]): open, or with a JWT key configured, the user's JWT or an admin's.
fn caller() -> Vec<Failure> {
    let other_user =
        Caller::User("bob".into()).may_act_as("alice").map_or_else(|e| e, |()| unreachable!());
    vec![
        failure(
            ApiError::unauthorized("missing or invalid JWT"),
            "a JWT key is configured and the JWT is missing, invalid or expired",
        ),
        failure(other_user, "the JWT belongs to another user"),
    ]
}

/// A call that changes state ([`crate::auth::Throttled`]): a [`caller`], rate limited.
fn throttled() -> Vec<Failure> {
    let one = std::num::NonZeroU32::MIN;
    let limits = RateLimits::new(RateLimit { per_second: one, burst: one });
    let limited = limits.check("doc".into()).and_then(|()| limits.check("doc".into()));
    let limited = limited.map_or_else(|e| e, |()| unreachable!());
    let mut failures = caller();
    failures.push(failure(
        limited,
        "too many calls from this caller (MALL_RATE_LIMIT_PER_SEC); retry after Retry-After",
    ));
    failures
}

/// An admin call ([`crate::auth::Admin`]).
fn admin() -> Vec<Failure> {
    vec![
        failure(
            ApiError::unauthorized("admin calls need Authorization: Bearer <token>"),
            "the admin token (or an admin JWT) is missing or wrong",
        ),
        failure(
            ApiError::forbidden("admin calls need the admin role"),
            "a user's JWT, or admin calls are disabled (no MALL_ADMIN_TOKEN nor JWT key)",
        ),
    ]
}

/// The items of an order or a pay body, turned into [`domain::model::OrderItems`].
fn items() -> Vec<Failure> {
    let all = [
        OrderItemsError::Empty,
        OrderItemsError::TooManyLines,
        OrderItemsError::Amount(AmountError::Overflow),
        OrderItemsError::TooManyUnits,
    ];
    for error in &all {
        match error {
            OrderItemsError::Empty
            | OrderItemsError::TooManyLines
            | OrderItemsError::Amount(_)
            | OrderItemsError::TooManyUnits => {}
        }
    }
    let mut failures = vec![
        failure(InvalidProductId, "a product_id is not a positive 64-bit integer"),
        failure(AmountError::NotPositive, "a count is below 1 or not a whole 64-bit number"),
    ];
    failures.extend(all.into_iter().map(|error| {
        let when = match error {
            OrderItemsError::Empty => "no lines",
            OrderItemsError::TooManyLines => "more than 100 distinct products",
            OrderItemsError::Amount(_) | OrderItemsError::TooManyUnits => {
                "more than 1 000 000 units of one product (lines naming it are summed)"
            }
        };
        failure(error, when)
    }));
    failures
}

fn idempotency_outcomes() -> Vec<Failure> {
    let all = [IdempotencyError::Mismatch, IdempotencyError::InProgress];
    for error in &all {
        match error {
            // `AlreadyUsed` never reaches a client: the use case replays the stored answer.
            IdempotencyError::Mismatch
            | IdempotencyError::InProgress
            | IdempotencyError::AlreadyUsed => {}
        }
    }
    all.into_iter()
        .map(|error| {
            let when = match error {
                IdempotencyError::Mismatch => "the Idempotency-Key was used for another request",
                _ => "a call with this Idempotency-Key is still running",
            };
            failure(error, when)
        })
        .collect()
}

/// Every failure of the operation `operation_id`, in the order the handler checks them.
pub(crate) fn failures(operation_id: &str) -> Vec<Failure> {
    let mut all: Vec<Failure> = match operation_id {
        "health" => vec![],
        "register" => [
            throttled(),
            json_body(),
            user_path_body(),
            vec![failure(
                RegisterError::AlreadyRegistered(user()),
                "the id is taken (the account is untouched)",
            )],
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>(),
        "charge" => [
            throttled(),
            user_path(),
            json_body(),
            vec![failure(
                AmountError::NotPositive,
                "amount is below 1 or not a whole 64-bit number",
            )],
            idempotency_header(),
            charge_outcomes(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>(),
        "point" => [
            caller(),
            user_path(),
            vec![failure(BalanceError::UnknownUser(user()), "unknown user")],
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>(),
        "ranked" => vec![],
        "catalog" => {
            let bad = web_query_error("offset=01");
            vec![
                failure(bad, "offset or limit is not a whole number from 0 to 2^63-1 in digits"),
                failure(crate::routes::zero_limit(), "limit=0"),
            ]
        }
        "add_product" => [
            admin(),
            json_body(),
            vec![
                failure(
                    InvalidProductName,
                    "the name is blank, too long or has control characters",
                ),
                failure(AmountError::NotPositive, "price is below 1 or not a whole 64-bit number"),
                failure(AmountError::Negative, "quantity is below 0 or not a whole 64-bit number"),
            ],
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>(),
        "product" => [
            product_path(),
            vec![failure(ProductLookupError::UnknownProduct(product_id()), "unknown product")],
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>(),
        "edit_product" => [
            admin(),
            product_path(),
            json_body(),
            vec![
                failure(
                    InvalidProductName,
                    "the name is blank, too long or has control characters",
                ),
                failure(AmountError::NotPositive, "price or restock is below 1 or not whole"),
                failure(crate::routes::empty_edit(), "no field to change"),
            ],
            edit_outcomes(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>(),
        "order" => {
            [throttled(), user_path(), json_body(), items(), idempotency_header(), order_outcomes()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        }
        "pending_order" => {
            [caller(), user_path(), pending_outcomes()].into_iter().flatten().collect::<Vec<_>>()
        }
        "pay" => {
            [throttled(), user_path(), json_body(), items(), idempotency_header(), pay_outcomes()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        }
        _ => return vec![],
    };
    all.extend(unavailable());
    all
}

fn user_path_body() -> Vec<Failure> {
    vec![failure(InvalidUserId, "id is not 1-64 characters of [A-Za-z0-9._-]")]
}

fn web_query_error(query: &str) -> ApiError {
    actix_web::web::Query::<PageQuery>::from_query(query)
        .map_or_else(|error: QueryPayloadError| ApiError::from(&error), |_| unreachable!())
}

fn charge_outcomes() -> Vec<Failure> {
    let all = vec![
        failure(ChargeError::UnknownUser(user()), "unknown user (no account is created)"),
        failure(ChargeError::Amount(AmountError::Overflow), "the balance would pass 2^63-1"),
    ];
    let exhaustive = |error: &ChargeError| match error {
        ChargeError::UnknownUser(_)
        | ChargeError::Amount(_)
        | ChargeError::Idempotency(_)
        | ChargeError::Unexpected(_) => {}
    };
    exhaustive(&ChargeError::Amount(AmountError::Overflow));
    [all, idempotency_outcomes()].into_iter().flatten().collect::<Vec<_>>()
}

fn edit_outcomes() -> Vec<Failure> {
    let exhaustive = |error: &EditProductError| match error {
        EditProductError::UnknownProduct(_)
        | EditProductError::Amount(_)
        | EditProductError::Unexpected(_) => {}
    };
    exhaustive(&EditProductError::Amount(AmountError::Overflow));
    vec![
        failure(EditProductError::UnknownProduct(product_id()), "unknown product"),
        failure(
            EditProductError::Amount(AmountError::Overflow),
            "the units on the shelf would pass 2^63-1",
        ),
    ]
}

fn order_outcomes() -> Vec<Failure> {
    let exhaustive = |error: &PlaceOrderError| match error {
        PlaceOrderError::UnknownUser(_)
        | PlaceOrderError::UnknownProduct(_)
        | PlaceOrderError::Amount(_)
        | PlaceOrderError::LackOfStock(_)
        | PlaceOrderError::LackOfPoints
        | PlaceOrderError::Idempotency(_)
        | PlaceOrderError::Unexpected(_) => {}
    };
    exhaustive(&PlaceOrderError::LackOfPoints);
    let all = vec![
        failure(PlaceOrderError::UnknownUser(user()), "unknown user"),
        failure(PlaceOrderError::UnknownProduct(product_id()), "unknown product"),
        failure(PlaceOrderError::Amount(AmountError::Overflow), "the total would pass 2^63-1"),
        failure(
            PlaceOrderError::LackOfStock(product_id()),
            "lack of products: a line's count is above the available stock",
        ),
        failure(PlaceOrderError::LackOfPoints, "lack of point: the balance is below the total"),
    ];
    [all, idempotency_outcomes()].into_iter().flatten().collect::<Vec<_>>()
}

fn pending_outcomes() -> Vec<Failure> {
    let exhaustive = |error: &PendingOrderError| match error {
        PendingOrderError::UnknownUser(_)
        | PendingOrderError::NoPendingOrder
        | PendingOrderError::Unexpected(_) => {}
    };
    exhaustive(&PendingOrderError::NoPendingOrder);
    vec![
        failure(PendingOrderError::UnknownUser(user()), "unknown user"),
        failure(PendingOrderError::NoPendingOrder, "no pending form: none, expired or paid"),
    ]
}

fn pay_outcomes() -> Vec<Failure> {
    let exhaustive = |error: &PayError| match error {
        PayError::UnknownUser(_)
        | PayError::NoPendingOrder
        | PayError::ItemsMismatch
        | PayError::LackOfPoints
        | PayError::Idempotency(_)
        | PayError::Unexpected(_) => {}
    };
    exhaustive(&PayError::ItemsMismatch);
    let all = vec![
        failure(PayError::UnknownUser(user()), "unknown user"),
        failure(PayError::NoPendingOrder, "no pending form: none, expired or paid"),
        failure(PayError::ItemsMismatch, "the items differ from the pending form's"),
        failure(PayError::LackOfPoints, "lack of point: the balance is below the total"),
    ];
    [all, idempotency_outcomes()].into_iter().flatten().collect::<Vec<_>>()
}

// ---------------------------------------------------------------------------------------------
// Completing the document.

fn complete(doc: &mut Value) {
    let mut error_schemas = BTreeMap::new();
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let id = operation.get("operationId").and_then(Value::as_str).unwrap_or_default();
            let id = id.to_owned();
            constrain_parameters(operation);
            constrain_body(&id, operation);
            add_failures(&id, operation, &mut error_schemas);
            add_headers(operation);
            add_links(&id, operation);
            debug_assert!(!id.is_empty(), "{method} {path} has an operationId");
        }
    }
    constrain_schemas(&mut doc["components"]["schemas"]);
    let schemas = &mut doc["components"]["schemas"];
    for (name, schema) in error_schemas {
        schemas[name] = schema;
    }
}

/// Path, query and header parameters: the patterns [`crate::dto::rules`] holds.
fn constrain_parameters(operation: &mut Value) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for parameter in parameters {
        let schema = match parameter["name"].as_str() {
            Some("user_id") => json!({
                "type": "string", "minLength": 1, "maxLength": 64,
                "pattern": rules::USER_ID_PATTERN,
            }),
            Some("product_id") => json!({
                "type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX,
                "pattern": rules::PRODUCT_ID_PATTERN,
            }),
            Some("Idempotency-Key") => json!({
                "type": "string", "minLength": 1, "maxLength": 255,
                "pattern": rules::IDEMPOTENCY_KEY_PATTERN,
            }),
            Some("offset" | "limit") => {
                let mut schema = parameter["schema"].take();
                schema["pattern"] = json!(rules::DECIMAL_PATTERN);
                schema["maximum"] = json!(i64::MAX);
                schema
            }
            _ => continue,
        };
        parameter["schema"] = schema;
    }
}

/// Order and pay bodies name at least one line.
fn constrain_body(id: &str, operation: &mut Value) {
    if matches!(id, "order" | "pay") {
        operation["requestBody"]["content"]["application/json"]["schema"]["minItems"] = json!(1);
    }
}

/// Schema constraints utoipa's attributes cannot hold: name patterns, success codes, and
/// 64-bit bounds written exactly.
fn constrain_schemas(schemas: &mut Value) {
    schemas["RegisterRequest"]["properties"]["id"]["pattern"] = json!(rules::USER_ID_PATTERN);
    // At least one field (`crate::routes::empty_edit`).
    schemas["EditProductRequest"]["minProperties"] = json!(1);
    for body in ["NewProductRequest", "EditProductRequest"] {
        let name = &mut schemas[body]["properties"]["name"];
        name["pattern"] = json!(rules::PRODUCT_NAME_PATTERN);
        name["type"] = json!("string");
    }
    let Some(all) = schemas.as_object_mut() else { return };
    for (name, schema) in all.iter_mut() {
        // Exact 64-bit bounds (utoipa writes attribute bounds as floats).
        let properties = schema.get_mut("properties").and_then(Value::as_object_mut);
        for property in properties.into_iter().flat_map(|p| p.values_mut()) {
            if property.get("maximum").is_some_and(|m| m.as_f64() >= Some(9.2e18)) {
                property["maximum"] = json!(i64::MAX);
            }
        }
        // A success body's errorcode is 0.
        if !name.starts_with("Success_") {
            continue;
        }
        let parts = schema.get_mut("allOf").and_then(Value::as_array_mut);
        for part in parts.into_iter().flatten() {
            if let Some(code) = part.pointer_mut("/properties/errorcode") {
                *code = json!({"type": "integer", "enum": [0], "description": "0: success"});
            }
        }
    }
}

/// The error schema for answers that carry exactly `codes`, e.g. `Error1or2`.
fn error_schema(codes: &BTreeSet<u8>) -> (String, Value) {
    let name = format!("Error{}", codes.iter().map(u8::to_string).collect::<Vec<_>>().join("or"));
    let listed = codes.iter().map(|c| code_name(*c)).collect::<Vec<_>>().join("; ");
    let schema = json!({
        "type": "object",
        "description": format!("An error: {listed}."),
        "required": ["errorcode", "message"],
        "properties": {
            "errorcode": {"type": "integer", "enum": codes.iter().collect::<Vec<_>>()},
            "message": {"type": "string", "description": "for people, not for programs"},
        },
        "additionalProperties": false,
    });
    (name, schema)
}

fn code_name(code: u8) -> String {
    let name = match code {
        1 => "invalid request",
        2 => "invalid amount",
        3 => "lack of point",
        4 => "lack of products",
        5 => "no pending order",
        6 => "unauthorized",
        7 => "unavailable",
        _ => "success",
    };
    format!("{code} {name}")
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict",
        413 => "Content too large",
        415 => "Unsupported media type",
        422 => "Unprocessable content",
        429 => "Too many requests",
        503 => "Unavailable",
        _ => "Error",
    }
}

fn add_failures(id: &str, operation: &mut Value, error_schemas: &mut BTreeMap<String, Value>) {
    let mut by_status: BTreeMap<u16, Vec<Failure>> = BTreeMap::new();
    for failure in failures(id) {
        by_status.entry(failure.error.status_code().as_u16()).or_default().push(failure);
    }
    for (status, failures) in by_status {
        let codes: BTreeSet<u8> = failures.iter().map(|f| f.error.code() as u8).collect();
        let (name, schema) = error_schema(&codes);
        error_schemas.insert(name.clone(), schema);
        let mut seen = BTreeSet::new();
        let lines: Vec<String> = failures
            .iter()
            .filter(|f| seen.insert((f.error.code() as u8, f.when)))
            .map(|f| format!("- code {}: {}", f.error.code() as u8, f.when))
            .collect();
        let mut response = json!({
            "description": format!("{}:\n{}", reason(status), lines.join("\n")),
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}},
        });
        let mut headers = Map::new();
        if status == 401 {
            headers.insert(
                "WWW-Authenticate".into(),
                json!({"description": "`Bearer`", "schema": {"type": "string", "enum": ["Bearer"]}}),
            );
        }
        if matches!(status, 429 | 503) {
            headers.insert(
                "Retry-After".into(),
                json!({"description": "seconds to wait before retrying",
                       "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}}),
            );
        }
        if !headers.is_empty() {
            response["headers"] = Value::Object(headers);
        }
        operation["responses"][status.to_string()] = response;
    }
}

/// Every answer carries `X-Request-Id`.
fn add_headers(operation: &mut Value) {
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for response in responses.values_mut() {
        response["headers"]["X-Request-Id"] = json!({
            "description": "the caller's own X-Request-Id if it is 1-64 characters of \
                            [A-Za-z0-9._-], else a new UUID; on every log line of the call",
            "schema": {"type": "string", "pattern": rules::USER_ID_PATTERN},
        });
    }
}

/// Links from the calls that create or change something to the calls that use it, so that a
/// client (or a stateful tester) walks register → charge → order → pay → ranking, and add
/// product → look up, edit, order.
fn add_links(id: &str, operation: &mut Value) {
    let user_from_body = json!({"user_id": "$request.body#/id"});
    let same_user = json!({"user_id": "$request.path.user_id"});
    let new_product = json!({"product_id": "$response.body#/product/id"});
    let same_product = json!({"product_id": "$request.path.product_id"});
    let link = |target: &str, parameters: &Value, description: &str| json!({"operationId": target, "parameters": parameters, "description": description});
    let (status, links) = match id {
        "register" => (
            "201",
            json!({
                "ChargeTheNewUser": link("charge", &user_from_body, "charge the new user's points"),
                "ReadTheNewUsersPoints": link("point", &user_from_body, "the new user's balance"),
                "OrderAsTheNewUser": link("order", &user_from_body, "order as the new user"),
                "TheNewUsersPendingOrder": link("pending_order", &user_from_body, "the new user's pending form"),
            }),
        ),
        "charge" => (
            "200",
            json!({
                "ReadThePoints": link("point", &same_user, "the balance just charged"),
                "OrderWithThePoints": link("order", &same_user, "order as the user just charged"),
            }),
        ),
        "add_product" => (
            "201",
            json!({
                "LookUpTheNewProduct": link("product", &new_product, "the new product"),
                "EditTheNewProduct": link("edit_product", &new_product, "edit or restock it"),
                "OrderTheNewProduct": {
                    "operationId": "order",
                    "requestBody": [{"product_id": "$response.body#/product/id", "count": 1}],
                    "description": "order one unit of the new product",
                    "x-schemathesis": {"merge_body": false},
                },
            }),
        ),
        "edit_product" => (
            "200",
            json!({"LookUpTheProduct": link("product", &same_product, "the product as edited")}),
        ),
        "order" => (
            "200",
            json!({
                "PayTheOrder": {
                    "operationId": "pay",
                    "parameters": same_user,
                    "requestBody": "$request.body",
                    "description": "pay the form just placed, with the same items",
                    // Schemathesis: send this body as it is, not merged with a generated one.
                    "x-schemathesis": {"merge_body": false},
                },
                "ReadThePendingOrder": link("pending_order", &same_user, "the form just placed"),
            }),
        ),
        "pay" => (
            "200",
            json!({
                "SeeTheRanking": {"operationId": "ranked", "description": "the best sellers, this sale included (within a second)"},
                "ReadThePointsLeft": link("point", &same_user, "the balance after paying"),
            }),
        ),
        _ => return,
    };
    operation["responses"][status]["links"] = links;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).map(|re| re.is_match(text)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            " ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\u{85}", "\u{a0}", "\u{1680}", "\u{2003}",
            "\u{2028}", "\u{3000}", "\u{0}", "\u{1f}", "\u{7f}", "\u{9f}", "\u{1c}", "a", "Z", "7",
            "é", "한", "☕", "\u{200b}", "-", ".",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn the_user_id_pattern_is_the_parser(id in "[A-Za-z0-9._\\- é/\n]{0,70}") {
            prop_assert_eq!(
                matches(rules::USER_ID_PATTERN, &id),
                UserId::parse(&id).is_ok(),
                "{:?}", id
            );
        }

        #[test]
        fn the_product_name_pattern_is_the_parser(name in name_strategy()) {
            prop_assert_eq!(
                matches(rules::PRODUCT_NAME_PATTERN, &name),
                domain::values::ProductName::parse(&name).is_ok(),
                "{:?}", name
            );
        }

        #[test]
        fn the_id_patterns_are_the_parsers(raw in "[0-9+\\- a]{0,21}") {
            let decimal = crate::dto::canonical_decimal(&raw).is_some();
            prop_assert_eq!(matches(rules::DECIMAL_PATTERN, &raw), decimal, "{:?}", raw);
            let id = crate::routes::product_id(&raw).is_ok();
            let pattern = matches(rules::PRODUCT_ID_PATTERN, &raw);
            let in_range = raw.parse::<i64>().is_ok();
            prop_assert_eq!(pattern && in_range, id, "{:?}", raw);
        }

        #[test]
        fn the_idempotency_key_pattern_is_the_parser(key in "[ -~\t\u{e9}]{0,260}") {
            let user = UserId::parse("a").map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                matches(rules::IDEMPOTENCY_KEY_PATTERN, &key),
                domain::idempotency::IdempotencyKey::new(user, &key, String::new()).is_ok(),
                "{:?}", key
            );
        }
    }

    #[test]
    fn long_names_are_measured_after_trimming() {
        let name = |inner: usize| format!("  {}  ", "x".repeat(inner));
        for length in [1, 199, 200, 201] {
            assert_eq!(
                matches(rules::PRODUCT_NAME_PATTERN, &name(length)),
                domain::values::ProductName::parse(&name(length)).is_ok(),
                "{length}"
            );
        }
    }

    #[test]
    fn every_operation_can_be_unavailable_and_bodies_can_be_malformed() {
        for id in ["register", "charge", "add_product", "edit_product", "order", "pay"] {
            let statuses: BTreeSet<u16> =
                failures(id).iter().map(|f| f.error.status_code().as_u16()).collect();
            for status in [400, 413, 415, 503] {
                assert!(statuses.contains(&status), "{id} lists {status}: {statuses:?}");
            }
        }
    }
}
