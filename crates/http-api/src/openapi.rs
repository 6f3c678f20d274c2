//! The OpenAPI 3 description of every route in [`crate::routes`]. The functions here only carry
//! the annotations; `tests/openapi.rs` checks that the document and the router list the same
//! routes.

#![allow(dead_code, clippy::unused_async)]

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::{
    AmountBody, CatalogBody, ChargeRequest, EditProductRequest, HealthBody, ItemRequest,
    NewProductRequest, OrderBody, OrderDto, OrderLineDto, OutboxHealth, PageQuery, PayBody,
    PaymentDto, ProductBody, ProductDto, RankedBody, RankedDto, RegisterRequest, Success,
};
use crate::error::{ErrorCode, ErrorResponse};

/// The document served at `/openapi.json`.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "mall",
        description = "An e-commerce order service: points, a catalog with exact stock, orders that \
                       reserve stock until they expire, payments, best sellers. Every response \
                       carries `errorcode` (0 = success); errors also carry `message`.",
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
const PRODUCT_ID: &str = "a positive integer, digits only, no leading zero";

/// Liveness: the store answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    description = "200 while the store answers, with the data-platform backlog.",
    responses(
        (status = 200, body = Success<HealthBody>),
        (status = 503, description = "the store is unreachable (code 7)", body = ErrorResponse),
    ))]
async fn health() {}

/// Register a user.
#[utoipa::path(post, path = "/user", tag = "points", request_body = RegisterRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "registered with 0 points", body = Success<AmountBody>),
        (status = 400, description = "bad user id (code 1)", body = ErrorResponse),
        (status = 409, description = "already registered (code 1)", body = ErrorResponse),
    ))]
async fn register() {}

/// Charge points.
#[utoipa::path(patch, path = "/user/{user_id}/charge", tag = "points",
    params(("user_id" = String, Path, description = USER_ID),
           ("Idempotency-Key" = Option<String>, Header, description = "replays the first answer for 24 h")),
    request_body = ChargeRequest, security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the balance after", body = Success<AmountBody>),
        (status = 400, description = "amount ≤ 0 or overflow (code 2), malformed (code 1)", body = ErrorResponse),
        (status = 404, description = "unknown user (code 1)", body = ErrorResponse),
        (status = 422, description = "Idempotency-Key reused for another request (code 1)", body = ErrorResponse),
    ))]
async fn charge() {}

/// Read the balance.
#[utoipa::path(get, path = "/user/{user_id}/point", tag = "points",
    params(("user_id" = String, Path, description = USER_ID)), security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the balance", body = Success<AmountBody>),
        (status = 404, description = "unknown user (code 1)", body = ErrorResponse),
    ))]
async fn point() {}

/// Best sellers.
#[utoipa::path(get, path = "/product/ranked", tag = "catalog",
    description = "Units sold in paid orders over the rolling window, best first, ties by id.",
    responses((status = 200, body = Success<RankedBody>)))]
async fn ranked() {}

/// A catalog page.
#[utoipa::path(get, path = "/product", tag = "catalog", params(PageQuery),
    responses(
        (status = 200, description = "a page by id ascending; limit above 100 is 100", body = Success<CatalogBody>),
        (status = 400, description = "bad offset or limit (code 1)", body = ErrorResponse),
    ))]
async fn catalog() {}

/// Add a product (admin).
#[utoipa::path(post, path = "/product", tag = "catalog", request_body = NewProductRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = Success<ProductBody>),
        (status = 400, description = "bad name (code 1), price or quantity (code 2)", body = ErrorResponse),
        (status = 401, description = "missing or wrong admin credentials (code 6)", body = ErrorResponse),
        (status = 403, description = "not an admin, or admin calls disabled (code 6)", body = ErrorResponse),
    ))]
async fn add_product() {}

/// Look a product up.
#[utoipa::path(get, path = "/product/{product_id}", tag = "catalog",
    params(("product_id" = i64, Path, description = PRODUCT_ID, minimum = 1,
            pattern = "^[1-9][0-9]*$")),
    responses(
        (status = 200, description = "quantity is the available stock", body = Success<ProductBody>),
        (status = 400, description = "bad id (code 1)", body = ErrorResponse),
        (status = 404, description = "unknown product (code 1)", body = ErrorResponse),
    ))]
async fn product() {}

/// Edit or restock a product (admin).
#[utoipa::path(patch, path = "/product/{product_id}", tag = "catalog",
    params(("product_id" = i64, Path, description = PRODUCT_ID, minimum = 1,
            pattern = "^[1-9][0-9]*$")),
    request_body = EditProductRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = Success<ProductBody>),
        (status = 400, description = "nothing to change (code 1), bad values (code 2)", body = ErrorResponse),
        (status = 401, description = "missing or wrong admin credentials (code 6)", body = ErrorResponse),
        (status = 404, description = "unknown product (code 1)", body = ErrorResponse),
    ))]
async fn edit_product() {}

/// Order: reserve stock and create the order form.
#[utoipa::path(post, path = "/order/{user_id}", tag = "orders",
    params(("user_id" = String, Path, description = USER_ID),
           ("Idempotency-Key" = Option<String>, Header, description = "replays the first answer for 24 h")),
    request_body = Vec<ItemRequest>, security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the order form; the stock is reserved until expires_at", body = Success<OrderBody>),
        (status = 400, description = "malformed (code 1), bad count or overflow (code 2)", body = ErrorResponse),
        (status = 404, description = "unknown user or product (code 1)", body = ErrorResponse),
        (status = 409, description = "lack of products (code 4), lack of point (code 3)", body = ErrorResponse),
    ))]
async fn order() {}

/// The pending order form.
#[utoipa::path(get, path = "/order/{user_id}", tag = "orders",
    params(("user_id" = String, Path, description = USER_ID)), security((), ("bearer" = [])),
    responses(
        (status = 200, body = Success<OrderBody>),
        (status = 404, description = "unknown user (code 1), no pending form (code 5)", body = ErrorResponse),
    ))]
async fn pending_order() {}

/// Pay the pending order form.
#[utoipa::path(post, path = "/order/{user_id}/pay", tag = "orders",
    params(("user_id" = String, Path, description = USER_ID),
           ("Idempotency-Key" = Option<String>, Header, description = "replays the first answer for 24 h")),
    request_body = Vec<ItemRequest>, security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the payment and the balance after", body = Success<PayBody>),
        (status = 400, description = "items differ from the form (code 1)", body = ErrorResponse),
        (status = 404, description = "no pending form: none, expired or paid (code 5)", body = ErrorResponse),
        (status = 409, description = "lack of point (code 3)", body = ErrorResponse),
    ))]
async fn pay() {}
