//! On a MariaDB Galera cluster (`make cluster-up`: three nodes on 127.0.0.1:3307–3309), with
//! stores on different nodes: migrations started on every node at once apply once; the whole
//! persistence contract holds with each call sent to the next node in turn; and the flash sale
//! of `group_commit.rs` sells out exactly with a store on each node.
//! `MALL_TEST_GALERA=off` skips these tests; without a cluster they fail, saying how to start one.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use domain::support::ManualClock;
use store_mysql::testing::{fresh_galera_stores, galera_nodes, Spread};
use store_mysql::PoolOptions;

const POOL: PoolOptions = PoolOptions {
    size: 8,
    checkout_timeout: Duration::from_secs(20),
    statement_timeout: Duration::from_secs(20),
};

#[test]
fn migrations_started_on_every_node_at_once_apply_once() {
    let Some(nodes) = galera_nodes() else { return };
    for round in 0..3 {
        let name = format!(
            "mall_test_migrate_{}_{round}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let start = Arc::new(Barrier::new(nodes.len()));
        let runs: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (url, start) = (format!("{node}/{name}"), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    store_mysql::migrate(&url)
                })
            })
            .collect();
        let results: Vec<_> = runs.into_iter().map(|r| r.join().expect("thread")).collect();
        let applied: Vec<Vec<String>> = results
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.unwrap_or_else(|e| panic!("round {round}, node {i}: {e:#}")))
            .collect();
        let migrators = applied.iter().filter(|versions| !versions.is_empty()).count();
        assert_eq!(migrators, 1, "round {round}: exactly one node migrated: {applied:?}");
        let all = applied.iter().map(Vec::len).max().unwrap_or(0);
        assert!(all >= 8, "round {round}: every migration applied: {applied:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flash_sale_with_a_store_on_each_node_sells_out_exactly() {
    let Some(nodes) = galera_nodes() else { return };
    let pool = PoolOptions { checkout_timeout: Duration::from_secs(30), ..POOL };
    let (stores, urls) = fresh_galera_stores(&nodes, pool).await;
    common::flash_sale::flash_sale(stores.into_iter().map(Arc::new).collect(), &urls[0]).await;
}

async fn spread() -> Arc<Spread> {
    let nodes = galera_nodes().expect("checked by the caller");
    Arc::new(Spread::new(fresh_galera_stores(&nodes, POOL).await.0))
}

/// The contract suite's scenarios, each on a fresh cluster database, each call on the next
/// node. (Skipped, like the rest, when `MALL_TEST_GALERA=off`.)
mod contract {
    use super::*;

    macro_rules! on_cluster {
        ($($name:ident),+ $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                if galera_nodes().is_none() {
                    return;
                }
                store_contract::scenarios::$name(spread().await).await;
            }
        )+};
    }

    /// A store keeps the sums of closed sales hours for itself, and learns of a payment in such
    /// an hour only when it records the payment: this scenario (a payment in an hour a day old)
    /// is one instance's, so it runs on one store, on the second node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ranking_counts_a_payment_in_an_hour_already_summed() {
        let Some(nodes) = galera_nodes() else { return };
        let clock = Arc::new(ManualClock::new(store_contract::support::t0()));
        let store = fresh_galera_stores(&nodes, POOL).await.0.swap_remove(1);
        let store = Arc::new(store.with_clock(clock.clone()));
        store_contract::scenarios::ranking_counts_a_payment_in_an_hour_already_summed(store, clock)
            .await;
    }

    on_cluster!(
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
        concurrent_orders_never_oversell,
        concurrent_charges_are_never_lost,
        concurrent_pays_of_one_form_succeed_once,
        concurrent_orders_by_one_user_leave_one_form,
        two_sweepers_release_each_form_once,
        concurrent_claims_never_share_an_event,
    );
}
