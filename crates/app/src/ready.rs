//! `GET /ready`: whether this instance should get traffic — the database answers, every
//! migration is applied, and the outbox relay is alive — with each check's detail.
//! (`GET /health` stays the SPEC's: the store answers.)

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use domain::Mall;
use serde_json::json;

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

/// Readiness: database, migrations, relay.
#[utoipa::path(get, path = "/ready", tag = "operations",
    description = "Whether this instance should get traffic: the database answers, every \
                   migration is applied, the outbox relay is alive. 503 (code 7) names the failing check.",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
pub async fn endpoint(mall: web::Data<Mall>, relay: web::Data<Arc<Heartbeat>>) -> HttpResponse {
    let database = match mall.health().await {
        Ok(_) => json!({"ok": true}),
        Err(error) => json!({"ok": false, "error": format!("{error:#}")}),
    };
    let migrations = match mall.pending_migrations().await {
        Ok(0) => json!({"ok": true, "pending": 0}),
        Ok(pending) => json!({"ok": false, "pending": pending}),
        Err(error) => json!({"ok": false, "error": format!("{error:#}")}),
    };
    let relay = match relay.silence_ms() {
        Some(silence) if silence <= RELAY_SILENCE_LIMIT_MS => {
            json!({"ok": true, "last_turn_secs": silence as f64 / 1e3})
        }
        Some(silence) => json!({"ok": false, "last_turn_secs": silence as f64 / 1e3}),
        None => json!({"ok": false, "error": "the relay has not started"}),
    };
    let ready = [&database, &migrations, &relay].iter().all(|check| check["ok"] == true);
    let (status, code, word) = if ready {
        (StatusCode::OK, 0, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, 7, "not ready")
    };
    HttpResponse::build(status).json(json!({
        "errorcode": code,
        "status": word,
        "checks": {"database": database, "migrations": migrations, "relay": relay},
    }))
}
