//! Prometheus metrics at `/metrics`: one recorder for the process, rendered on each scrape,
//! with the outbox backlog read fresh at that moment.

use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use domain::Mall;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from half a millisecond to ten seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Calls per database batch (group commit): 1 when the shop is quiet, up to the batch cap.
const BATCH_BUCKETS: [f64; 11] =
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// The process's recorder, installed the first time it is asked for.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("db_batch_size".into()), &BATCH_BUCKETS)
            })
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (tests); metrics then go there instead.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    description = "Prometheus metrics: requests and latency by route and status, business \
                   counters, the outbox backlog, the database pool. With MALL_METRICS_BIND it is \
                   served on that address instead of this one; with MALL_METRICS_AUTH=admin it \
                   needs the admin credentials.",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the Prometheus text format", content_type = "text/plain"),
        (status = 401, description = "MALL_METRICS_AUTH=admin: missing or wrong admin credentials (code 6)",
         body = http_api::ErrorResponse),
        (status = 403, description = "MALL_METRICS_AUTH=admin: not an admin, or no admin token set (code 6)",
         body = http_api::ErrorResponse),
        (status = 503, description = "the call took too long (code 7)", body = http_api::ErrorResponse),
    ))]
pub async fn endpoint(mall: web::Data<Mall>) -> HttpResponse {
    if let Ok(report) = mall.health().await {
        metrics::gauge!("mall_outbox_undelivered").set(report.outbox.undelivered as f64);
        metrics::gauge!("mall_outbox_failing").set(report.outbox.failing as f64);
        let age = report.oldest_event_age().map_or(0.0, |age| age.num_milliseconds() as f64 / 1e3);
        metrics::gauge!("mall_outbox_oldest_age_seconds").set(age);
    }
    let handle = handle();
    handle.run_upkeep();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(handle.render())
}

/// `/metrics` for admins only (`MALL_METRICS_AUTH=admin`): the credentials are checked first.
pub async fn endpoint_for_admins(_admin: http_api::Admin, mall: web::Data<Mall>) -> HttpResponse {
    endpoint(mall).await
}
