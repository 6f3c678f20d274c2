//! The flash sale that `group_commit.rs` runs on one store and `galera.rs` runs with a store
//! on each node of a cluster: 2 000 concurrent orders for 500 units of one product, then half
//! the accepted forms paid twice at once, each payment through another store than its order;
//! checked to the unit from the database.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::TimeDelta;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use domain::errors::{PayError, PlaceOrderError};
use domain::idempotency::{IdempotencyKey, Outcome, Remember};
use domain::ports::{IdempotencyStore, OrderRepository, PaymentRepository};
use store_contract::support::{
    available, form, pending_id, place, plan, product_with, queued_events, secs, sold, t0,
    user_with,
};
use store_mysql::MysqlStore;
use tokio::task::JoinSet;

const BUYERS: usize = 2_000;
const UNITS: i64 = 500;
const SIDE_STOCK: i64 = 1_000_000;
const TTL: TimeDelta = TimeDelta::seconds(600);

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
    // On a Galera node: see every write the cluster committed before this read (no such
    // variable elsewhere, which is fine).
    let _ = diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "SET SESSION wsrep_sync_wait = 1",
    );
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

pub fn remember(user: &domain::values::UserId, i: usize) -> Option<Remember> {
    let key = IdempotencyKey::new(user.clone(), &format!("k{i}"), format!("fp{i}")).expect("key");
    Some(Remember { key, at: t0(), expires_at: t0() + TimeDelta::hours(24) })
}

/// Calls answered and transactions run, summed over `stores`.
fn order_calls(stores: &[Arc<MysqlStore>]) -> (u64, u64, u64) {
    stores.iter().fold((0, 0, 0), |(calls, batches, largest), s| {
        let stats = s.order_batch_stats();
        (calls + stats.calls(), batches + stats.batches(), largest.max(stats.largest()))
    })
}

/// The flash sale: buyer `i` orders through `stores[i % n]` and pays through the next store;
/// setup and checks go through `stores[0]`; `url` is the database the checks read.
#[allow(clippy::too_many_lines)]
pub async fn flash_sale(stores: Vec<Arc<MysqlStore>>, url: &str) {
    let n = stores.len();
    let store = stores[0].clone();
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
    let stats_before = order_calls(&stores).0;

    let mut tasks = JoinSet::new();
    for (i, user) in buyers.iter().cloned().enumerate() {
        let store = stores[i % n].clone();
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

    let (calls, batches, largest) = order_calls(&stores);
    assert_eq!(calls - stats_before, BUYERS as u64);
    assert!(
        largest > 1 && batches < calls,
        "the storm shared transactions: {calls} orders in {batches} batches, largest {largest}"
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
        let url = url.to_owned();
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
        for twice in 1..=2 {
            let (store, user) = (stores[(i + twice) % n].clone(), buyers[i].clone());
            pays.spawn(async move {
                let order = form(&user, &format!("o{i}"), &[(hot, 1, 1)], t0(), TTL);
                (i, store.commit_payment(plan(&order, t0() + secs(1)), None).await)
            });
        }
    }
    let mut paid = HashMap::new();
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
    let (calls, batches) = stores.iter().fold((0, 0), |(c, b), s| {
        (c + s.payment_batch_stats().calls(), b + s.payment_batch_stats().batches())
    });
    assert!(batches < calls, "payments shared transactions: {calls} in {batches} batches");
    let sold_units = paying.len() as i64;
    assert_eq!(sold(&store, hot).await, sold_units, "the ranking counts each unit sold once");
    assert_eq!(queued_events(&store).await, sold_units as u64, "one event per payment");
    let ledger = tokio::task::spawn_blocking({
        let url = url.to_owned();
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
