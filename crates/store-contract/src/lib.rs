//! One behaviour suite that every persistence adapter must pass.
//!
//! Each scenario is an `async fn` taking a fresh store (and, for the few that need it, the
//! store's clock); [`store_contract!`] expands them into one `#[tokio::test]` per scenario in
//! the adapter's own test crate. It hands the builder a hand-moved clock at
//! [`support::t0`], for a store that reads the time itself (a store without a clock ignores it):
//!
//! ```ignore
//! store_contract::store_contract!(|_clock| async { std::sync::Arc::new(MemoryStore::new()) });
//! ```
//!
//! The scenarios drive stores only through the domain's ports, with explicit times, so they
//! hold for any adapter. "A failure changes nothing" is checked after every rejection.

pub mod scenarios;

pub mod support;

use domain::ports::Clock;
use domain::support::ManualClock;
pub use support::Store;

/// Expands every scenario into a test. `$make` is a closure taking the store's clock
/// (`Arc<dyn Clock>`, a [`ManualClock`](domain::support::ManualClock) at [`support::t0`]) and
/// returning an `impl Future<Output = Arc<S>>` that builds a fresh, empty store for each test.
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        $crate::store_contract!(@expand $make;
            register_starts_at_zero_and_refuses_duplicates,
            charge_adds_and_a_refused_charge_changes_nothing,
            catalog_assigns_ids_pages_and_edits,
            restock_that_would_overflow_changes_nothing,
            order_reserves_every_line_or_none,
            order_checks_stock_before_points,
            order_without_enough_points_changes_nothing,
            order_by_unknown_user_or_for_unknown_product_changes_nothing,
            new_order_replaces_the_pending_form_counting_its_release,
            failed_replacement_keeps_the_old_form,
            pay_debits_settles_records_sales_and_queues_one_event,
            pay_succeeds_once,
            pay_without_enough_points_changes_nothing,
            pay_of_a_replaced_form_fails,
            expiry_is_due_at_the_instant_and_releases_once,
            expired_form_cannot_be_paid_and_paid_form_cannot_expire,
            ranking_sums_paid_units_in_the_window_ties_by_id,
            outbox_leases_retries_and_delivers_each_event,
            delivered_events_are_purged_after_retention,
            health_reports_a_reachable_store,
            a_key_is_stored_with_its_effect_and_taken_once,
            a_rejected_call_stores_no_key,
            expired_keys_are_free_again_and_purged,
        );
        $crate::store_contract!(@expand_concurrent $make;
            concurrent_orders_never_oversell,
            concurrent_charges_are_never_lost,
            concurrent_pays_of_one_form_succeed_once,
            concurrent_orders_by_one_user_leave_one_form,
            two_sweepers_release_each_form_once,
            concurrent_claims_never_share_an_event,
        );
        $crate::store_contract!(@expand_clocked $make;
            ranking_counts_a_payment_in_an_hour_already_summed,
        );
    };
    (@expand $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _) = $crate::fresh($make).await;
                $crate::scenarios::$name(store).await;
            }
        )+
    };
    (@expand_concurrent $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _) = $crate::fresh($make).await;
                $crate::scenarios::$name(store).await;
            }
        )+
    };
    (@expand_clocked $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, clock) = $crate::fresh($make).await;
                $crate::scenarios::$name(store, clock).await;
            }
        )+
    };
}

/// A fresh store from `make`, built with a hand-moved clock at [`support::t0`], and that clock.
pub async fn fresh<S, F, Fut>(make: F) -> (std::sync::Arc<S>, std::sync::Arc<ManualClock>)
where
    F: FnOnce(std::sync::Arc<dyn Clock>) -> Fut,
    Fut: std::future::Future<Output = std::sync::Arc<S>>,
{
    let clock = std::sync::Arc::new(ManualClock::new(support::t0()));
    (make(clock.clone()).await, clock)
}
