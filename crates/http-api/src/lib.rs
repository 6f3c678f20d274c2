//! The HTTP adapter (actix-web): SPEC §2's routes, their bodies, and one mapping of every
//! failure — the domain's and actix's own — onto SPEC error codes.

mod admin;
mod dto;
mod error;
mod routes;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Resource};
use domain::Mall;

pub use admin::AdminToken;
pub use error::{ApiError, ErrorCode};

/// The largest JSON body accepted; larger ones answer 413, code 1.
pub const JSON_LIMIT_BYTES: usize = 64 * 1024;

/// Registers every route, the extractor error handlers and the JSON fallbacks for unknown
/// routes. Use as `App::new().configure(http_api::configure(mall, token))`.
pub fn configure(mall: Mall, admin: AdminToken) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(mall))
            .app_data(web::Data::new(admin))
            .app_data(
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
            .service(resource("/health").route(web::get().to(routes::health)))
            .service(resource("/user").route(web::post().to(routes::register)))
            .service(resource("/user/{user_id}/charge").route(web::patch().to(routes::charge)))
            .service(resource("/user/{user_id}/point").route(web::get().to(routes::point)))
            // Before `/product/{product_id}`, which would otherwise capture "ranked".
            .service(resource("/product/ranked").route(web::get().to(routes::ranked)))
            .service(
                resource("/product")
                    .route(web::get().to(routes::catalog))
                    .route(web::post().to(routes::add_product)),
            )
            .service(
                resource("/product/{product_id}")
                    .route(web::get().to(routes::product))
                    .route(web::patch().to(routes::edit_product)),
            )
            .service(
                resource("/order/{user_id}")
                    .route(web::post().to(routes::order))
                    .route(web::get().to(routes::pending_order)),
            )
            .service(resource("/order/{user_id}/pay").route(web::post().to(routes::pay)))
            .default_service(web::to(routes::no_route));
    }
}

fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(routes::wrong_method))
}

/// Logs one line per request (wrap with `actix_web::middleware::from_fn(access_log)`) with its method, path, status and latency.
pub async fn access_log(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.path().to_owned();
    let response = next.call(request).await?;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(response)
}
