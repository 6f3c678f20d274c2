//! The `mall` application: builds the store, the use cases and the HTTP server from a
//! [`Config`], runs the background tasks, and shuts everything down in order.

pub mod config;
pub mod demo;
pub mod metrics;
pub mod ready;
pub mod system;
pub mod tasks;
pub mod telemetry;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context};
use chrono::TimeDelta;
use data_platform::LoggingPublisher;
use domain::ports::{Clock, EventPublisher};
use domain::{EventRelay, Mall, RelaySettings, Settings, Stores};
use http_api::{ApiSettings, Authenticator, RateLimits};
use store_memory::MemoryStore;
use store_mysql::MysqlStore;
use tokio::sync::{watch, Notify};
use utoipa_swagger_ui::SwaggerUi;

pub use crate::config::Config;
use crate::config::MetricsAuth;
use crate::system::{SystemClock, UuidV7Ids};

/// A built application, listening but not yet serving.
pub struct Application {
    address: SocketAddr,
    server: Server,
    /// The `MALL_METRICS_BIND` listener serving `/metrics` alone, when set.
    metrics_server: Option<(SocketAddr, Server)>,
    mall: Mall,
    relay: EventRelay,
    relay_wake: Arc<Notify>,
    heartbeat: Arc<ready::Heartbeat>,
    rate_limits: Option<Arc<RateLimits>>,
    admin_token: Option<String>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("address", &self.address).finish_non_exhaustive()
    }
}

impl Application {
    /// Builds the store and the use cases and binds the listener.
    ///
    /// # Errors
    /// A setting this build cannot honour, an address that cannot be bound, or a store that
    /// fails while the demo data is added.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        config.check()?;
        let publisher: Arc<dyn EventPublisher> = match &config.data_platform_url {
            Some(url) => {
                let timeout = Duration::from_millis(config.data_platform_timeout_ms);
                let shown = data_platform::shown_url(url);
                tracing::info!(url = shown, "payment events go to the data platform");
                data_platform::publisher_for(url, timeout).await?
            }
            None => {
                tracing::info!("MALL_DATA_PLATFORM_URL is unset: payment events are logged");
                Arc::new(LoggingPublisher)
            }
        };
        // One clock for the use cases, the relay, the ranking's cache and the MySQL store.
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (mut stores, schema): (Stores, Arc<dyn ready::Schema>) = match &config.database_url {
            Some(url) => {
                let patience = Duration::from_secs(config.db_connect_timeout_secs);
                let options = (config.pool_options(), config.store_options());
                let store = connect_with_retries(url, options, patience).await?;
                tracing::info!(?store, "using the MySQL/MariaDB store");
                let store = Arc::new(store.with_clock(clock.clone()));
                (Stores::from_one(store.clone(), clock.clone()), store)
            }
            None => {
                tracing::info!("using the in-memory store: data lasts as long as the process");
                let stores = Stores::from_one(Arc::new(MemoryStore::new()), clock.clone());
                (stores, Arc::new(ready::NoSchema))
            }
        };
        let settings = Settings {
            order_ttl: TimeDelta::seconds(i64::from(config.order_ttl_secs)),
            ranking_days: config.ranking_days,
            ranking_size: config.ranking_size as usize,
        };
        let relay_wake = Arc::new(Notify::new());
        stores.payments =
            Arc::new(tasks::WakeRelayOnPayment::new(stores.payments, relay_wake.clone()));
        let relay_settings = RelaySettings {
            concurrency: config.relay_concurrency as usize,
            retention: TimeDelta::hours(i64::from(config.outbox_retention_hours)),
            ..RelaySettings::default()
        };
        let relay =
            EventRelay::new(stores.outbox.clone(), publisher, clock.clone(), relay_settings);
        let mall = Mall::new(stores, clock, Arc::new(UuidV7Ids), settings);

        let mut admin_token = config.admin_token.clone().filter(|t| !t.is_empty());
        if config.demo {
            demo::seed(&mall).await.context("adding the demo data")?;
            admin_token.get_or_insert_with(|| uuid::Uuid::new_v4().simple().to_string());
        }

        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let address = listener.local_addr()?;
        let auth = Authenticator::new(admin_token.clone(), config.jwt())
            .context("setting up authentication")?;
        if !auth.users_must_authenticate() {
            tracing::warn!(
                "no JWT key is set: user calls are open, anyone who knows a user id can act as \
                 that user; set MALL_JWT_SECRET or MALL_JWT_PUBLIC_KEY"
            );
        }
        let rate_limits = config.rate_limit().map(|limit| Arc::new(RateLimits::new(limit)));
        let metrics_server = match &config.metrics_bind {
            Some(bind) => Some(metrics_server(bind, config.metrics_auth, &mall, &auth)?),
            None => None,
        };
        // With a metrics address, the main one does not serve /metrics at all.
        let main_metrics = config.metrics_bind.is_none().then_some(config.metrics_auth);
        let api = ApiSettings {
            auth,
            rate_limits: rate_limits.clone(),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        };
        metrics::handle();
        let heartbeat = Arc::new(ready::Heartbeat::default());
        let app_heartbeat = web::Data::new(heartbeat.clone());
        let app_schema = web::Data::new(schema);
        let app_mall = mall.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(http_api::enforce_timeout))
                .wrap(from_fn(http_api::request_context))
                .app_data(app_heartbeat.clone())
                .app_data(app_schema.clone())
                .configure(|cfg| operations(cfg, main_metrics))
                .configure(http_api::configure(app_mall.clone(), api.clone()))
        })
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self {
            address,
            server,
            metrics_server,
            mall,
            relay,
            relay_wake,
            heartbeat,
            rate_limits,
            admin_token,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where `/metrics` is served apart from the API (`MALL_METRICS_BIND`), if anywhere.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|(address, _)| *address)
    }

    /// The admin token in force (the configured one, or the demo's).
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish,
    /// and stops the background tasks. Undelivered events wait in the outbox for the next start
    /// (or another instance).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let sweeper = tokio::spawn(tasks::sweep_expired_forms(self.mall.clone(), stop_rx.clone()));
        let relay = tokio::spawn(tasks::relay_events(
            self.relay.clone(),
            self.relay_wake.clone(),
            self.heartbeat.clone(),
            stop_rx.clone(),
        ));
        let housekeeping = tokio::spawn(tasks::housekeeping(
            self.mall.clone(),
            self.relay.clone(),
            self.rate_limits.clone(),
            stop_rx.clone(),
        ));
        let metrics = tokio::spawn(tasks::metrics_upkeep(stop_rx));
        tracing::info!(address = %self.address, "listening on http://{}", self.address);
        let scrape_server = self.metrics_server.map(|(address, server)| {
            tracing::info!(%address, "serving /metrics on http://{address}/metrics");
            (server.handle(), tokio::spawn(server))
        });

        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let served = tokio::select! {
            result = &mut server => result,
            () = shutdown => {
                tracing::info!("shutting down: finishing in-flight requests");
                handle.stop(true).await;
                server.await
            }
        };
        if let Some((handle, task)) = scrape_server {
            handle.stop(true).await;
            let _ = task.await;
        }
        // Stopping is best effort: a task that already ended has dropped its receiver.
        let _ = stop_tx.send(true);
        let _ = tokio::join!(sweeper, relay, housekeeping, metrics);
        tracing::info!("stopped");
        served.context("the server task panicked")?.context("the server failed")
    }
}

/// Connects to the database (creating and migrating it), retrying with growing pauses for up
/// to `patience` so that `mall` can start before its database in a rollout.
async fn connect_with_retries(
    url: &str,
    options: (store_mysql::PoolOptions, store_mysql::StoreOptions),
    patience: Duration,
) -> anyhow::Result<MysqlStore> {
    if !url.starts_with("mysql://") {
        bail!("DATABASE_URL must be a mysql:// URL, not {}", store_mysql::redact(url));
    }
    let deadline = std::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(500);
    loop {
        let attempt_url = url.to_owned();
        let attempt = tokio::task::spawn_blocking(move || {
            MysqlStore::connect_with(&attempt_url, options.0, options.1)
        })
        .await
        .context("the database setup task panicked")?;
        match attempt {
            Ok(store) => return Ok(store),
            Err(error) if std::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = format!("{error:#}"), retry_in = ?pause, "the database is not reachable yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                return Err(error.context(format!(
                    "cannot reach the database at {} (gave up after {} s)",
                    store_mysql::redact(url),
                    patience.as_secs()
                )))
            }
        }
    }
}

/// The operations routes `app` adds to the API: `/ready`, `/metrics` (unless `metrics` is
/// `None`: it is served on its own address), and the API's own description at `/openapi.json`
/// with Swagger UI at `/docs` (vendored: nothing is fetched).
fn operations(cfg: &mut web::ServiceConfig, metrics: Option<MetricsAuth>) {
    for (path, method, route) in ops_route_table(metrics) {
        cfg.service(http_api::resource(path, &[method]).route(route));
    }
    let get = [actix_web::http::Method::GET];
    cfg.service(http_api::resource("/docs", &get).route(web::get().to(|| async {
        actix_web::HttpResponse::PermanentRedirect()
            .insert_header((actix_web::http::header::LOCATION, "/docs/"))
            .finish()
    })))
    .service(http_api::resource("/openapi.json", &get).route(web::get().to(openapi_json)))
    .service(
        SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/openapi.json")),
    );
}

/// `GET /openapi.json`: [`openapi`], built once.
async fn openapi_json() -> actix_web::HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| openapi().to_string());
    actix_web::HttpResponse::Ok().content_type("application/json").body(body.as_str())
}

fn ops_route_table(
    metrics: Option<MetricsAuth>,
) -> Vec<(&'static str, actix_web::http::Method, actix_web::Route)> {
    use actix_web::http::Method;
    let mut table = vec![("/ready", Method::GET, web::get().to(ready::endpoint))];
    if let Some(auth) = metrics {
        table.push(("/metrics", Method::GET, metrics_route(auth)));
    }
    table
}

fn metrics_route(auth: MetricsAuth) -> actix_web::Route {
    match auth {
        MetricsAuth::Open => web::get().to(metrics::endpoint),
        MetricsAuth::Admin => web::get().to(metrics::endpoint_for_admins),
    }
}

/// The `MALL_METRICS_BIND` listener: `/metrics` and nothing else (404 code 1 elsewhere), with
/// the same authentication as the API for `MALL_METRICS_AUTH=admin`.
fn metrics_server(
    bind: &str,
    auth_rule: MetricsAuth,
    mall: &Mall,
    auth: &Authenticator,
) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = TcpListener::bind(bind)
        .with_context(|| format!("cannot listen on {bind} (MALL_METRICS_BIND)"))?;
    let address = listener.local_addr()?;
    let mall = web::Data::new(mall.clone());
    let auth = web::Data::new(auth.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(mall.clone())
            .app_data(auth.clone())
            .service(
                http_api::resource("/metrics", &[actix_web::http::Method::GET])
                    .route(metrics_route(auth_rule)),
            )
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(http_api::ApiError::not_found("no such route"))
            }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((address, server))
}

/// Every route the service answers that its description must list: the API's and the
/// operations routes.
pub fn routes() -> Vec<(&'static str, actix_web::http::Method)> {
    let ops = ops_route_table(Some(MetricsAuth::Open))
        .into_iter()
        .map(|(path, method, _)| (path, method));
    http_api::routes().into_iter().chain(ops).collect()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(ready::endpoint, metrics::endpoint))]
struct OperationsDoc;

/// The whole description, as served at `/openapi.json`: the API's and the operations routes.
pub fn openapi() -> serde_json::Value {
    use utoipa::OpenApi;
    let mut doc = http_api::ApiDoc::openapi();
    doc.merge(OperationsDoc::openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    http_api::describe(doc)
}

/// `mall migrate`: applies pending migrations to `DATABASE_URL`.
///
/// # Errors
/// Without `DATABASE_URL`, or when the database is unreachable or a migration fails.
pub async fn migrate(config: &Config) -> anyhow::Result<Vec<String>> {
    let Some(url) = config.database_url.clone() else {
        bail!("`mall migrate` needs DATABASE_URL (or --database-url)");
    };
    tokio::task::spawn_blocking(move || store_mysql::migrate(&url))
        .await
        .context("the migration task panicked")?
}

/// Listens for Ctrl-C and SIGTERM from the moment it is called (so a signal that arrives while
/// the server starts is not lost) and returns a future that resolves on the first of them.
///
/// # Errors
/// When the signal handlers cannot be installed.
#[cfg(unix)]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

/// Listens for Ctrl-C and returns a future that resolves on it.
///
/// # Errors
/// Never on this platform; the signature matches the Unix one.
#[cfg(not(unix))]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}
