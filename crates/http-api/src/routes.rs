//! Handlers: parse the request into value types (400s), call one use case, shape the answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use domain::idempotency::{IdempotencyKey, InvalidIdempotencyKey};
use domain::model::{NewProduct, OrderItems, ProductEdit};
use domain::values::{Count, Points, Price, ProductId, ProductName, Stock, UserId};
use domain::Mall;

use crate::auth::{Admin, Caller, Throttled};
use crate::dto::{
    canonical_decimal, order_items, AmountBody, CatalogBody, ChargeRequest, EditProductRequest,
    HealthBody, ItemRequest, NewProductRequest, OrderBody, PageQuery, PayBody, ProductBody,
    RankedBody, RegisterRequest, Success,
};
use crate::error::ApiError;

type Reply = Result<HttpResponse, ApiError>;

const DEFAULT_PAGE_SIZE: u64 = 20;

fn ok<T: serde::Serialize>(body: T) -> Reply {
    Ok(HttpResponse::Ok().json(Success::new(body)))
}

fn created<T: serde::Serialize>(body: T) -> Reply {
    Ok(HttpResponse::build(StatusCode::CREATED).json(Success::new(body)))
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    Ok(UserId::parse(raw)?)
}

/// Counts a business call under `result="ok"` or `result="errorcode_N"`.
fn counted<T>(name: &'static str, result: Result<T, ApiError>) -> Result<T, ApiError> {
    let label = match &result {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("errorcode_{}", error.code() as u8),
    };
    metrics::counter!(name, "result" => label).increment(1);
    result
}

/// The header a client sends to make a charge, order or payment safe to retry.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The request's `Idempotency-Key`, bound to a fingerprint of what the request asks for (not
/// its bytes: the same items in another order are the same request).
fn idempotency_key(
    request: &HttpRequest,
    user: &UserId,
    what: std::fmt::Arguments<'_>,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let raw = value.to_str().map_err(|_| InvalidIdempotencyKey)?;
    Ok(Some(IdempotencyKey::new(user.clone(), raw, fingerprint(&what.to_string()))?))
}

/// The parts of an order or pay call, checked in SPEC order: who, what, and the retry key
/// bound to what is asked (`call` keeps an order's key from replaying for a payment).
fn items_call(
    call: &str,
    caller: &Caller,
    request: &HttpRequest,
    path: &str,
    body: web::Json<Vec<ItemRequest>>,
) -> Result<(UserId, OrderItems, Option<IdempotencyKey>), ApiError> {
    let user = acting_user(caller, path)?;
    let items = order_items(body.into_inner())?;
    let key = idempotency_key(request, &user, format_args!("{call} {}", canonical(&items)))?;
    Ok((user, items, key))
}

fn canonical(items: &OrderItems) -> String {
    items
        .iter()
        .map(|(product, count)| format!("{product}x{count}", count = count.get()))
        .collect::<Vec<_>>()
        .join(",")
}

/// FNV-1a, 64 bits, in hex: enough to tell two requests under one key apart.
fn fingerprint(request: &str) -> String {
    let hash = request.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The path's user, if the caller may act as them.
fn acting_user(caller: &Caller, raw: &str) -> Result<UserId, ApiError> {
    let user = user_id(raw)?;
    caller.may_act_as(user.as_str())?;
    tracing::Span::current().record("user", user.as_str());
    Ok(user)
}

/// Puts the order form's id on the request's log lines.
fn log_order(order_id: &domain::values::OrderId) {
    tracing::Span::current().record("order_id", order_id.as_str());
}

/// A path's product id: a positive integer written with digits only, no leading zero.
pub(crate) fn product_id(raw: &str) -> Result<ProductId, ApiError> {
    let number = canonical_decimal(raw).and_then(|n| i64::try_from(n).ok()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "product id {raw:?} is not a positive integer written with digits only"
        ))
    })?;
    Ok(ProductId::new(number)?)
}

pub async fn register(
    Throttled(caller): Throttled,
    mall: web::Data<Mall>,
    body: web::Json<RegisterRequest>,
) -> Reply {
    let id = user_id(&body.id)?;
    caller.may_act_as(id.as_str())?;
    let user = mall.register(id).await?;
    created(AmountBody { amount: user.balance.get() })
}

pub async fn charge(
    Throttled(caller): Throttled,
    request: HttpRequest,
    mall: web::Data<Mall>,
    path: web::Path<String>,
    body: web::Json<ChargeRequest>,
) -> Reply {
    let user = acting_user(&caller, &path)?;
    let amount = Points::positive(body.amount.amount()?)?;
    let key = idempotency_key(&request, &user, format_args!("charge {}", amount.get()))?;
    let result = mall.charge(user, amount, key).await.map_err(ApiError::from);
    if result.is_ok() {
        metrics::counter!("mall_points_charged_total").increment(amount.get().unsigned_abs());
    }
    let balance = counted("mall_charges_total", result)?;
    ok(AmountBody { amount: balance.get() })
}

pub async fn point(caller: Caller, mall: web::Data<Mall>, path: web::Path<String>) -> Reply {
    let balance = mall.balance(acting_user(&caller, &path)?).await?;
    ok(AmountBody { amount: balance.get() })
}

pub async fn product(mall: web::Data<Mall>, path: web::Path<String>) -> Reply {
    let product = mall.product(product_id(&path)?).await?;
    ok(ProductBody { product: product.into() })
}

pub async fn catalog(mall: web::Data<Mall>, query: web::Query<PageQuery>) -> Reply {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if limit == 0 {
        return Err(zero_limit());
    }
    let page = mall.catalog(query.offset.unwrap_or(0), limit).await?;
    ok(CatalogBody {
        products: page.products.into_iter().map(Into::into).collect(),
        total: page.total,
    })
}

pub async fn ranked(mall: web::Data<Mall>) -> Reply {
    let ranked = mall.ranking().await?;
    ok(RankedBody { products: ranked.into_iter().map(Into::into).collect() })
}

pub async fn add_product(
    _admin: Admin,
    mall: web::Data<Mall>,
    body: web::Json<NewProductRequest>,
) -> Reply {
    let body = body.into_inner();
    let product = NewProduct {
        name: ProductName::parse(&body.name)?,
        price: Price::new(body.price.amount()?)?,
        quantity: Stock::new(body.quantity.amount()?)?,
    };
    let product = mall.add_product(product).await?;
    created(ProductBody { product: product.into() })
}

pub async fn edit_product(
    _admin: Admin,
    mall: web::Data<Mall>,
    path: web::Path<String>,
    body: web::Json<EditProductRequest>,
) -> Reply {
    let id = product_id(&path)?;
    let body = body.into_inner();
    let edit = ProductEdit {
        name: body.name.as_deref().map(ProductName::parse).transpose()?,
        price: body.price.map(|p| p.amount().and_then(Price::new)).transpose()?,
        restock: body.restock.map(|r| r.amount().and_then(Count::new)).transpose()?,
    };
    if edit == ProductEdit::default() {
        return Err(empty_edit());
    }
    let product = mall.edit_product(id, edit).await?;
    ok(ProductBody { product: product.into() })
}

pub async fn order(
    Throttled(caller): Throttled,
    request: HttpRequest,
    mall: web::Data<Mall>,
    path: web::Path<String>,
    body: web::Json<Vec<ItemRequest>>,
) -> Reply {
    let (user, items, key) = items_call("order", &caller, &request, &path, body)?;
    let order = counted(
        "mall_orders_total",
        mall.place_order(user, items, key).await.map_err(ApiError::from),
    )?;
    log_order(&order.id);
    ok(OrderBody { order: order.into() })
}

pub async fn pending_order(
    caller: Caller,
    mall: web::Data<Mall>,
    path: web::Path<String>,
) -> Reply {
    let order = mall.pending_order(acting_user(&caller, &path)?).await?;
    log_order(&order.id);
    ok(OrderBody { order: order.into() })
}

pub async fn pay(
    Throttled(caller): Throttled,
    request: HttpRequest,
    mall: web::Data<Mall>,
    path: web::Path<String>,
    body: web::Json<Vec<ItemRequest>>,
) -> Reply {
    let (user, items, key) = items_call("pay", &caller, &request, &path, body)?;
    let receipt =
        counted("mall_payments_total", mall.pay(user, items, key).await.map_err(ApiError::from))?;
    metrics::counter!("mall_points_paid_total")
        .increment(receipt.payment.amount.get().unsigned_abs());
    log_order(&receipt.payment.order_id);
    ok(PayBody { payment: receipt.payment.into(), amount: receipt.balance.get() })
}

/// 400, code 1: `limit=0`.
pub(crate) fn zero_limit() -> ApiError {
    ApiError::bad_request("limit must be at least 1 (at most 100 are returned)")
}

/// 400, code 1: an edit that changes nothing.
pub(crate) fn empty_edit() -> ApiError {
    ApiError::bad_request("give at least one of name, price, restock")
}

pub async fn health(mall: web::Data<Mall>) -> Reply {
    let report = mall.health().await.map_err(|cause| ApiError::unavailable(&cause))?;
    ok(HealthBody::from(report))
}

pub async fn no_route() -> Reply {
    Err(ApiError::not_found("no such route"))
}
