//! Background work: the expiry sweeper and the outbox relay. Each stops when the shutdown
//! channel flips.

use std::time::Duration;

use domain::{EventRelay, Mall};
use tokio::sync::watch;
use tokio::time::{interval, MissedTickBehavior};

/// How often due forms are looked for. SPEC: stock returns within 2 s of a form's expiry.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Forms expired per store call; a sweep repeats until fewer are due.
pub const SWEEP_BATCH: usize = 500;
/// How often the outbox is drained. SPEC: an event leaves within a second of its payment.
pub const RELAY_EVERY: Duration = Duration::from_millis(200);
/// Events read per relay pass.
pub const RELAY_BATCH: usize = 100;

/// Expires due order forms until shutdown.
pub async fn sweep_expired_forms(mall: Mall, mut stop: watch::Receiver<bool>) {
    let mut tick = interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => sweep_once(&mall).await,
            _ = stop.changed() => break,
        }
    }
}

async fn sweep_once(mall: &Mall) {
    loop {
        match mall.expire_due_forms(SWEEP_BATCH).await {
            Ok(expired) => {
                if expired > 0 {
                    tracing::info!(expired, "expired order forms and released their stock");
                }
                if expired < SWEEP_BATCH {
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "expiry sweep failed; retrying"
                );
                return;
            }
        }
    }
}

/// Delivers outbox events until shutdown, then makes one last pass.
pub async fn relay_events(relay: EventRelay, mut stop: watch::Receiver<bool>) {
    let mut tick = interval(RELAY_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => relay_once(&relay).await,
            _ = stop.changed() => break,
        }
    }
    relay_once(&relay).await;
}

async fn relay_once(relay: &EventRelay) {
    loop {
        match relay.relay_once(RELAY_BATCH).await {
            Ok(sent) if sent == RELAY_BATCH => continue,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "event delivery failed; will retry"
                );
                return;
            }
        }
    }
}
