//! mall's business core. Pure: no I/O crate is a dependency (`cargo tree -p domain` shows it).
//!
//! - [`values`]: validated value types with checked arithmetic.
//! - [`model`]: entities, plans and events.
//! - [`errors`]: one error enum per use case.
//! - [`idempotency`]: keys, stored outcomes and replay of retried calls.
//! - [`ports`]: the traits adapters implement.
//! - [`rules`]: what each call decides, as pure functions both stores fold.
//! - [`service`]: the shop's use cases ([`Mall`]).
//! - [`ranking`]: the ranking's single flight, a decorator of the ranking port
//!   ([`CachedRanking`]).
//! - [`relay`]: delivery of payment events from the outbox ([`EventRelay`]).
//! - `support` (tests, and the `testing` feature): a hand-moved clock and sequential ids.

pub mod errors;
#[cfg(test)]
mod fixtures;
pub mod idempotency;
pub mod model;
pub mod ports;
pub mod ranking;
pub mod relay;
pub mod rules;
pub mod service;
mod single_flight;
#[cfg(any(test, feature = "testing"))]
pub mod support;
pub mod values;

pub use ranking::{CachedRanking, RANKING_FRESHNESS};
pub use relay::{EventRelay, RelayReport, RelaySettings};
pub use service::{HealthReport, Mall, Settings, Stores, BACKLOG_FRESHNESS, MAX_PAGE_SIZE};
