//! The HTTP adapter (actix-web): SPEC §2's routes, their bodies, and one mapping of every
//! failure — the domain's and actix's own — onto SPEC error codes.

mod auth;
mod dto;
mod error;
mod limits;
mod openapi;
mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Resource};
use domain::Mall;
use tracing::Instrument;

pub use auth::{Admin, Authenticator, Caller, JwtKey, JwtSettings, ADMIN_ROLE};
pub use error::{ApiError, ErrorCode, ErrorResponse};
pub use limits::{RateLimit, RateLimits};
pub use openapi::{describe, openapi, ApiDoc};

/// The largest JSON body accepted; larger ones answer 413, code 1.
pub const JSON_LIMIT_BYTES: usize = 64 * 1024;

/// How the API guards itself.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub auth: Authenticator,
    /// Limits on charge, order and pay per caller; `None`: unlimited.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// How long one request may take before it answers 503, code 7.
    pub request_timeout: Duration,
}

impl ApiSettings {
    /// An open service (no JWT) with this admin token, no rate limit and a 10 s time limit.
    pub fn open(admin_token: Option<String>) -> Self {
        Self {
            auth: Authenticator::new(admin_token, None).unwrap_or_else(|_| unreachable!()),
            rate_limits: None,
            request_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct RequestTimeout(Duration);

/// Registers every route, the extractor error handlers and the JSON fallbacks for unknown
/// routes. Use as `App::new().wrap(from_fn(enforce_timeout)).configure(configure(mall, s))`.
pub fn configure(mall: Mall, settings: ApiSettings) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(mall))
            .app_data(web::Data::new(settings.auth))
            .app_data(web::Data::new(RequestTimeout(settings.request_timeout)));
        if let Some(limits) = settings.rate_limits {
            cfg.app_data(web::Data::from(limits));
        }
        cfg.app_data(
            web::JsonConfig::default()
                .limit(JSON_LIMIT_BYTES)
                .error_handler(|error, _| ApiError::from(&error).into()),
        )
        .app_data(
            web::PathConfig::default().error_handler(|error, _| ApiError::from(&error).into()),
        )
        .app_data(
            web::QueryConfig::default().error_handler(|error, _| ApiError::from(&error).into()),
        )
        .default_service(web::to(routes::no_route));
        for (path, methods, routes) in grouped(route_table()) {
            let resource =
                routes.into_iter().fold(resource(path, &methods), |r, route| r.route(route));
            cfg.service(resource);
        }
    }
}

/// Every API route, as (path, method, handler). One table serves the router and the OpenAPI
/// drift test. Order matters: `/product/ranked` before `/product/{product_id}`.
fn route_table() -> Vec<(&'static str, Method, actix_web::Route)> {
    use routes::*;
    vec![
        ("/health", Method::GET, web::get().to(health)),
        ("/user", Method::POST, web::post().to(register)),
        ("/user/{user_id}/charge", Method::PATCH, web::patch().to(charge)),
        ("/user/{user_id}/point", Method::GET, web::get().to(point)),
        ("/product/ranked", Method::GET, web::get().to(ranked)),
        ("/product", Method::GET, web::get().to(catalog)),
        ("/product", Method::POST, web::post().to(add_product)),
        ("/product/{product_id}", Method::GET, web::get().to(product)),
        ("/product/{product_id}", Method::PATCH, web::patch().to(edit_product)),
        ("/order/{user_id}", Method::POST, web::post().to(order)),
        ("/order/{user_id}", Method::GET, web::get().to(pending_order)),
        ("/order/{user_id}/pay", Method::POST, web::post().to(pay)),
    ]
}

/// The (path, method) of every route [`configure`] registers.
pub fn routes() -> Vec<(&'static str, Method)> {
    route_table().into_iter().map(|(path, method, _)| (path, method)).collect()
}

/// A path, its methods and their routes.
type RouteGroup = (&'static str, Vec<Method>, Vec<actix_web::Route>);

/// Routes grouped by path, in first-seen order.
fn grouped(table: Vec<(&'static str, Method, actix_web::Route)>) -> Vec<RouteGroup> {
    let mut groups: Vec<RouteGroup> = Vec::new();
    for (path, method, route) in table {
        match groups.iter_mut().find(|(p, _, _)| *p == path) {
            Some((_, methods, routes)) => {
                methods.push(method);
                routes.push(route);
            }
            None => groups.push((path, vec![method], vec![route])),
        }
    }
    groups
}

/// A resource whose other methods answer 405, code 1, with `Allow` naming `methods`.
pub fn resource(path: &str, methods: &[Method]) -> Resource {
    let allow = allow_header(methods);
    web::resource(path).default_service(web::to(move || {
        let allow = allow.clone();
        async move { Err::<actix_web::HttpResponse, _>(ApiError::method_not_allowed(allow)) }
    }))
}

/// The value of an `Allow` header for `methods` (RFC 9110 §10.2.1), e.g. `GET, PATCH`.
fn allow_header(methods: &[Method]) -> String {
    methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
}

/// Answers 503, code 7, when a request takes longer than [`ApiSettings::request_timeout`]
/// (wrap with `actix_web::middleware::from_fn(enforce_timeout)`).
pub async fn enforce_timeout(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = request.app_data::<web::Data<RequestTimeout>>().map(|t| t.0);
    match limit {
        // The server turns the error into the SPEC JSON answer like any other `ApiError`.
        Some(limit) => tokio::time::timeout(limit, next.call(request))
            .await
            .unwrap_or_else(|_| Err(ApiError::timed_out().into())),
        None => next.call(request).await,
    }
}

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Gives each request an id — the caller's `X-Request-Id` when it is 1–64 characters of
/// `[A-Za-z0-9._-]`, else a new UUID — returns it in `X-Request-Id`, runs the request inside a
/// tracing span that carries it (so every log line of the request, database work included, has
/// it), and logs one line per request with the route, status and latency. Wrap with
/// `actix_web::middleware::from_fn(request_context)`.
pub async fn request_context(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
            (1..=64).contains(&id.len()) && id.bytes().all(allowed)
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route,
        path = request.path(),
        user = tracing::field::Empty,
        order_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = next.call(request).instrument(span.clone()).await;
    let status = match &result {
        Ok(response) => response.status(),
        // An inner middleware gave up (the time limit): the server renders the error.
        Err(error) => error.as_response_error().status_code(),
    };
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(status = status.as_u16(), micros = elapsed.as_micros() as u64, "request");
    });
    let status = status.as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    let mut response = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HeaderName::from_static(REQUEST_ID), value);
    }
    Ok(response)
}
