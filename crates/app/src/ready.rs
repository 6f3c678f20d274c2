//! `GET /ready`: whether this instance should get traffic — the database answers, every
//! migration is applied, and the outbox relay is alive — with each check's detail.
//! (`GET /health` stays the SPEC's: the store answers.)

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use async_trait::async_trait;
use domain::Mall;
use serde_json::json;
use store_mysql::MysqlStore;

/// The relay counts as alive if it finished a loop turn this recently. A turn takes at most
/// half the 60 s lease plus the claim, so a minute of silence means it is stuck or gone.
const RELAY_SILENCE_LIMIT_MS: i64 = 60_000;

/// When the relay last went round its loop, in ms since the epoch.
#[derive(Debug, Default)]
pub struct Heartbeat(AtomicI64);

impl Heartbeat {
    pub fn beat(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    fn silence_ms(&self) -> Option<i64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            last => Some(now_ms() - last),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The database schema, as `/ready` checks it: a store detail, not a domain port, so `app`
/// asks the store it built directly.
#[async_trait]
pub trait Schema: Send + Sync + 'static {
    /// How many migrations the schema still lacks.
    ///
    /// # Errors
    /// When the database is unreachable.
    async fn pending_migrations(&self) -> anyhow::Result<usize>;
}

#[async_trait]
impl Schema for MysqlStore {
    async fn pending_migrations(&self) -> anyhow::Result<usize> {
        MysqlStore::pending_migrations(self).await
    }
}

/// The in-memory store: no schema, nothing to migrate.
#[derive(Debug)]
pub struct NoSchema;

#[async_trait]
impl Schema for NoSchema {
    async fn pending_migrations(&self) -> anyhow::Result<usize> {
        Ok(0)
    }
}

/// Readiness: database, migrations, relay.
#[utoipa::path(get, path = "/ready", tag = "operations", operation_id = "ready",
    description = "Whether this instance should get traffic: the database answers, every \
                   migration is applied, the outbox relay is alive. 503 (code 7) names the \
                   failing checks in `failing`; their causes are logged, not shown.",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready (code 7), or the call took too long",
         body = Readiness, headers(("Retry-After" = String, description = "seconds"))),
    ))]
pub async fn endpoint(
    mall: web::Data<Mall>,
    schema: web::Data<Arc<dyn Schema>>,
    relay: web::Data<Arc<Heartbeat>>,
) -> HttpResponse {
    let database = match mall.health().await {
        Ok(_) => json!({"ok": true}),
        Err(error) => failed("database", &error),
    };
    let migrations = match schema.pending_migrations().await {
        Ok(0) => json!({"ok": true, "pending": 0}),
        Ok(pending) => json!({"ok": false, "pending": pending}),
        Err(error) => failed("migrations", &error),
    };
    let relay = match relay.silence_ms() {
        Some(silence) if silence <= RELAY_SILENCE_LIMIT_MS => {
            json!({"ok": true, "last_turn_secs": silence as f64 / 1e3})
        }
        Some(silence) => json!({"ok": false, "last_turn_secs": silence as f64 / 1e3}),
        None => json!({"ok": false, "error": "the relay has not started"}),
    };
    let checks = [("database", database), ("migrations", migrations), ("relay", relay)];
    let failing: Vec<&str> =
        checks.iter().filter(|(_, check)| check["ok"] != true).map(|(name, _)| *name).collect();
    let checks: serde_json::Map<String, serde_json::Value> =
        checks.into_iter().map(|(name, check)| (name.to_owned(), check)).collect();
    if failing.is_empty() {
        return HttpResponse::Ok()
            .json(json!({"errorcode": 0, "status": "ready", "checks": checks}));
    }
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).json(json!({
        "errorcode": 7,
        "status": "not ready",
        "message": format!("not ready: {}", failing.join(", ")),
        "failing": failing,
        "checks": checks,
    }))
}

/// The body of `/ready` (its schema in the description; the handler writes it as JSON).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Readiness {
    /// 0 when ready, 7 when not.
    #[schema(minimum = 0, maximum = 7)]
    errorcode: u8,
    /// `ready` or `not ready`.
    status: Option<String>,
    /// `not ready: <the failing checks>` (only when not ready).
    message: Option<String>,
    /// The failing checks' names: `database`, `migrations`, `relay`.
    failing: Option<Vec<String>>,
    /// Each check: `{"ok": bool, ...}` with its detail.
    checks: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// A check that could not run: its cause (which may hold host names, SQL or a user name) goes
/// to the log; the answer only says the check failed.
fn failed(check: &'static str, error: &anyhow::Error) -> serde_json::Value {
    tracing::warn!(check, error = format!("{error:#}"), "a readiness check failed");
    json!({"ok": false})
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use domain::support::{ManualClock, SequentialIds};
    use domain::{Settings, Stores};
    use store_memory::MemoryStore;

    use super::*;

    const CAUSE: &str = "Access denied for user 'mall'@'db.internal.example' (using password: YES)";
    const SQL_CAUSE: &str =
        "SELECT version FROM __diesel_schema_migrations: Lost connection to db.internal.example:3306";

    /// A store whose every probe fails with a cause that must not reach the client.
    struct FailingProbe;

    #[async_trait]
    impl domain::ports::HealthProbe for FailingProbe {
        async fn check(&self) -> anyhow::Result<()> {
            Err(anyhow::anyhow!(CAUSE))
        }
    }

    #[async_trait]
    impl Schema for FailingProbe {
        async fn pending_migrations(&self) -> anyhow::Result<usize> {
            Err(anyhow::anyhow!(SQL_CAUSE))
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[actix_web::test]
    async fn a_failing_check_is_named_and_its_cause_is_logged_not_shown() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let mut stores = Stores::from_one(Arc::new(MemoryStore::new()), clock.clone());
        stores.health = Arc::new(FailingProbe);
        let mall =
            Mall::new(stores, clock, Arc::new(SequentialIds::new("id")), Settings::default());
        let heartbeat = Arc::new(Heartbeat::default());
        heartbeat.beat();
        let schema: Arc<dyn Schema> = Arc::new(FailingProbe);
        let response =
            endpoint(web::Data::new(mall), web::Data::new(schema), web::Data::new(heartbeat)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = actix_web::body::to_bytes(response.into_body()).await.expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["errorcode"], 7, "{body}");
        assert_eq!(body["failing"], json!(["database", "migrations"]), "{body}");
        assert_eq!(body["checks"]["database"], json!({"ok": false}), "{body}");
        assert_eq!(body["checks"]["migrations"], json!({"ok": false}), "{body}");
        assert_eq!(body["checks"]["relay"]["ok"], true, "{body}");
        let shown = body.to_string();
        for secret in ["db.internal", "Access denied", "SELECT", "mall'", "3306"] {
            assert!(!shown.contains(secret), "{secret:?} shown: {body}");
        }

        let logged = String::from_utf8(log.0.lock().expect("lock").clone()).expect("UTF-8");
        for line in [CAUSE, SQL_CAUSE] {
            assert!(logged.contains(line), "the cause is logged: {logged}");
        }
        assert!(logged.contains("WARN"), "{logged}");
    }
}
