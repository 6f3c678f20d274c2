//! Group commit under a flash sale: 2 000 concurrent orders for 500 units of one product reach
//! the store at once, so they are placed in shared transactions. The sell-out must still be
//! exact, order by order: 500 accepted, 1 500 refused for stock, every reserved unit held by
//! exactly one pending form, idempotency keys kept only for accepted orders; payments sent twice
//! at once pay each form once; and every unsold unit is back once the forms expire. Charges to
//! one user, coalesced the same way, each see their own balance.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use domain::errors::{PayError, PlaceOrderError};
use domain::idempotency::{IdempotencyKey, Outcome, Remember};
use domain::ports::{IdempotencyStore, OrderRepository, PaymentRepository, UserRepository};
use store_contract::support::{
    available, form, pending_id, place, plan, product_with, queued_events, secs, sold, t0,
    user_with,
};
use store_mysql::testing::fresh_store_with_url;
use store_mysql::PoolOptions;
use tokio::task::JoinSet;

const BUYERS: usize = 2_000;
const UNITS: i64 = 500;
const SIDE_STOCK: i64 = 1_000_000;
const TTL: TimeDelta = TimeDelta::seconds(600);
const POOL: PoolOptions = PoolOptions {
    size: 8,
    checkout_timeout: Duration::from_secs(30),
    statement_timeout: Duration::from_secs(30),
};

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Held {
    #[diesel(sql_type = BigInt)]
    product_id: i64,
    #[diesel(sql_type = BigInt)]
    reserved: i64,
    #[diesel(sql_type = BigInt)]
    held: i64,
}

/// Per product: the `reserved` column and the units the pending forms' lines hold.
fn reserved_and_held(url: &str) -> Vec<Held> {
    let mut conn = MysqlConnection::establish(url).expect("connect");
    diesel::sql_query(
        "SELECT p.id AS product_id, p.reserved AS reserved, \
           CAST(COALESCE(SUM(l.count), 0) AS SIGNED) AS held \
         FROM products p \
         LEFT JOIN order_lines l ON l.product_id = p.id \
           AND l.order_id IN (SELECT id FROM order_forms WHERE status = 'pending') \
         GROUP BY p.id, p.reserved ORDER BY p.id",
    )
    .load(&mut conn)
    .expect("query")
}

fn remember(user: &domain::values::UserId, i: usize) -> Option<Remember> {
    let key = IdempotencyKey::new(user.clone(), &format!("k{i}"), format!("fp{i}")).expect("key");
    Some(Remember { key, at: t0(), expires_at: t0() + TimeDelta::hours(24) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flash_sale_placed_in_shared_transactions_sells_out_exactly() {
    let (store, url) = fresh_store_with_url(POOL).await;
    let store = Arc::new(store);
    let hot = product_with(&store, 1, UNITS).await;
    let side = product_with(&store, 1, SIDE_STOCK).await;

    // Four kinds of buyer: hot + side in one order; hot with an idempotency key; hot replacing
    // an earlier pending form of 3 side units; hot alone.
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let user = user_with(&store, &format!("b{i}"), 10).await;
        if i % 4 == 2 {
            let earlier = form(&user, &format!("early{i}"), &[(side, 3, 1)], t0(), TTL);
            place(&store, earlier, None).await.expect("an earlier form");
        }
        buyers.push(user);
    }
    let side_before_storm = available(&store, side).await;
    assert_eq!(side_before_storm, SIDE_STOCK - 3 * (BUYERS as i64 / 4));
    let stats_before = store.order_batch_stats().calls();

    let mut tasks = JoinSet::new();
    for (i, user) in buyers.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let lines: &[_] =
                if i % 4 == 0 { &[(hot, 1, 1), (side, 1, 1)] } else { &[(hot, 1, 1)] };
            let order = form(&user, &format!("o{i}"), lines, t0(), TTL);
            let key = if i % 4 == 1 { remember(&user, i) } else { None };
            (i, place(&store, order, key).await)
        });
    }
    let mut accepted = Vec::new();
    let mut short = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            (i, Ok(order)) => {
                assert_eq!(order.id.as_str(), format!("o{i}"), "each caller gets its own order");
                accepted.push(i);
            }
            (i, Err(PlaceOrderError::LackOfStock(product))) => {
                assert_eq!(product, hot, "only the hot product runs short");
                short.push(i);
            }
            (i, Err(other)) => panic!("buyer {i}: unexpected {other:?}"),
        }
    }
    assert_eq!((accepted.len(), short.len()), (500, 1_500), "exactly the stock is sold");

    let stats = store.order_batch_stats();
    let placed_in_storm = stats.calls() - stats_before;
    assert_eq!(placed_in_storm, BUYERS as u64);
    assert!(
        stats.largest() > 1 && stats.batches() < stats.calls(),
        "the storm shared transactions: {} orders in {} batches, largest {}",
        stats.calls(),
        stats.batches(),
        stats.largest()
    );

    // Stock: the hot product is gone; the side product moved by exactly what was accepted.
    assert_eq!(available(&store, hot).await, 0);
    let with_side = accepted.iter().filter(|&&i| i % 4 == 0).count() as i64;
    let replaced = accepted.iter().filter(|&&i| i % 4 == 2).count() as i64;
    assert_eq!(
        available(&store, side).await,
        side_before_storm - with_side + 3 * replaced,
        "a replacement gives its old form's units back; a refused one keeps them held"
    );
    // Every reserved unit is held by exactly one pending form's line.
    let ledger = tokio::task::spawn_blocking({
        let url = url.clone();
        move || reserved_and_held(&url)
    })
    .await
    .expect("task");
    assert_eq!(ledger.len(), 2);
    for row in &ledger {
        assert_eq!(row.reserved, row.held, "no leaked or double-counted reservation: {row:?}");
    }
    assert_eq!(ledger[0].reserved, UNITS);

    // Each buyer's pending form is the one their answer named (or their earlier one).
    for &i in &accepted {
        let pending = pending_id(&store, &buyers[i], t0()).await;
        assert_eq!(pending.as_deref(), Some(format!("o{i}").as_str()));
    }
    for &i in &short {
        let pending = pending_id(&store, &buyers[i], t0()).await;
        let expected = (i % 4 == 2).then(|| format!("early{i}"));
        assert_eq!(pending, expected, "a refused order leaves the buyer's form as it was");
    }
    // Keys: stored with the order for accepted buyers, free again for refused ones.
    for i in (1..BUYERS).step_by(4) {
        let record = store.recall(buyers[i].clone(), format!("k{i}"), t0()).await.expect("recall");
        match record {
            Some(record) => {
                assert!(accepted.contains(&i), "a refused order keeps no key");
                assert!(
                    matches!(&record.outcome, Outcome::Ordered(o) if o.id.as_str() == format!("o{i}")),
                    "{record:?}"
                );
            }
            None => assert!(short.contains(&i), "an accepted order keeps its key"),
        }
    }

    // Half the accepted buyers pay (kinds 1 and 3: the hot unit alone), each twice at once:
    // one payment per form, in shared transactions.
    let paying: Vec<usize> = accepted.iter().copied().filter(|i| i % 2 == 1).collect();
    let mut pays = JoinSet::new();
    for &i in &paying {
        for _ in 0..2 {
            let (store, user) = (store.clone(), buyers[i].clone());
            pays.spawn(async move {
                let order = form(&user, &format!("o{i}"), &[(hot, 1, 1)], t0(), TTL);
                (i, store.commit_payment(plan(&order, t0() + secs(1)), None).await)
            });
        }
    }
    let mut paid = std::collections::HashMap::new();
    while let Some(joined) = pays.join_next().await {
        match joined.expect("task") {
            (i, Ok(receipt)) => {
                assert_eq!(receipt.balance.get(), 9, "each payment debits its own buyer once");
                *paid.entry(i).or_insert(0) += 1;
            }
            (_, Err(PayError::NoPendingOrder)) => {}
            (i, Err(other)) => panic!("buyer {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(paid.len(), paying.len(), "every form is paid");
    assert!(paid.values().all(|&n| n == 1), "and none twice");
    let stats = store.payment_batch_stats();
    assert!(stats.batches() < stats.calls(), "payments shared transactions: {stats:?}");
    let sold_units = paying.len() as i64;
    assert_eq!(sold(&store, hot).await, sold_units, "the ranking counts each unit sold once");
    assert_eq!(queued_events(&store).await, sold_units as u64, "one event per payment");
    let ledger = tokio::task::spawn_blocking({
        let url = url.clone();
        move || reserved_and_held(&url)
    })
    .await
    .expect("task");
    for row in &ledger {
        assert_eq!(row.reserved, row.held, "paid units leave `reserved`: {row:?}");
    }
    assert_eq!(ledger[0].reserved, UNITS - sold_units);

    // Expiry releases every unpaid form once and gives every unsold unit back.
    let forms = 500 - paying.len() + short.iter().filter(|&&i| i % 4 == 2).count();
    assert_eq!(store.expire_due(t0() + TTL, 10_000).await.expect("sweep"), forms);
    assert_eq!(available(&store, hot).await, UNITS - sold_units);
    assert_eq!(available(&store, side).await, SIDE_STOCK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_of_one_user_in_shared_transactions_each_see_their_own_balance() {
    let store = Arc::new(fresh_store_with_url(POOL).await.0);
    let alice = user_with(&store, "alice", 0).await;
    let charges: i64 = 2_000;

    let mut tasks = JoinSet::new();
    for amount in 1..=charges {
        let (store, alice) = (store.clone(), alice.clone());
        tasks.spawn(async move {
            let key = (amount % 2 == 0).then(|| remember(&alice, amount as usize)).flatten();
            let amount = domain::values::Points::new(amount).expect("points");
            store.charge(alice, amount, key).await.expect("a charge").get()
        });
    }
    let mut seen = Vec::new();
    while let Some(balance) = tasks.join_next().await {
        seen.push(balance.expect("task"));
    }
    seen.sort_unstable();
    seen.dedup();
    let total = charges * (charges + 1) / 2;
    assert_eq!(seen.len(), charges as usize, "every charge saw its own balance after it");
    assert_eq!(seen.last(), Some(&total), "the last charge saw the sum of all");
    assert_eq!(store_contract::support::balance(&store, &alice).await, total, "none lost");
    let stats = store.charge_batch_stats();
    assert!(stats.batches() < stats.calls(), "charges shared transactions: {stats:?}");
    let key = store.recall(alice.clone(), "k2".to_owned(), t0()).await.expect("recall");
    assert!(
        matches!(key, Some(record) if matches!(record.outcome, Outcome::Charged { .. })),
        "a keyed charge keeps its outcome"
    );
}
