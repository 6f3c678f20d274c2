//! The scenarios. Each takes a fresh, empty store. Rejections are followed by checks that
//! balances, stock, pending forms, sales and queued events are exactly as before.

use std::sync::Arc;

use chrono::TimeDelta;
use domain::errors::{ChargeError, EditProductError, PayError, PlaceOrderError, RegisterError};
use domain::idempotency::{IdempotencyError, IdempotencyKey, Outcome, Remember};
use domain::model::{FailedAttempt, OutboxBacklog, OutboxEntry, ProductEdit, RankedProduct};
use domain::ports::Clock;
use domain::support::ManualClock;
use domain::values::{AmountError, Count, Price, ProductId, ProductName};
use tokio::task::JoinSet;

use crate::support::{
    available, balance, claim, form, one_payment, pending_id, place, plan, points, product_with,
    queued_events, secs, sold, t0, uid, user_with, Store,
};

const TTL: TimeDelta = TimeDelta::seconds(600);

pub async fn register_starts_at_zero_and_refuses_duplicates<S: Store>(store: Arc<S>) {
    let user = store.register(uid("alice")).await.expect("first registration");
    assert_eq!(user.balance.get(), 0);
    store.charge(uid("alice"), points(7), None).await.expect("charge");
    let again = store.register(uid("alice")).await;
    assert!(matches!(again, Err(RegisterError::AlreadyRegistered(_))), "{again:?}");
    assert_eq!(balance(&store, &uid("alice")).await, 7, "a refused registration resets nothing");
    assert_eq!(store.balance(uid("nobody")).await.expect("read"), None);
}

pub async fn charge_adds_and_a_refused_charge_changes_nothing<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 0).await;
    assert_eq!(
        store.charge(alice.clone(), points(1_000), None).await.expect("charge").get(),
        1_000
    );
    assert_eq!(store.charge(alice.clone(), points(1), None).await.expect("charge").get(), 1_001);

    let unknown = store.charge(uid("ghost"), points(5), None).await;
    assert!(matches!(unknown, Err(ChargeError::UnknownUser(_))), "{unknown:?}");
    assert_eq!(store.balance(uid("ghost")).await.expect("read"), None, "no implicit account");

    let overflow = store.charge(alice.clone(), points(i64::MAX), None).await;
    assert!(matches!(overflow, Err(ChargeError::Amount(AmountError::Overflow))), "{overflow:?}");
    assert_eq!(balance(&store, &alice).await, 1_001);

    let rich = user_with(&store, "rich", i64::MAX).await;
    assert_eq!(balance(&store, &rich).await, i64::MAX, "the largest balance is allowed");
}

pub async fn catalog_assigns_ids_pages_and_edits<S: Store>(store: Arc<S>) {
    let first = product_with(&store, 100, 5).await;
    let second = product_with(&store, 200, 0).await;
    let third = product_with(&store, 300, 7).await;
    assert!(first < second && second < third, "ids ascend in insertion order");

    let page = store.page(0, 2).await.expect("page");
    assert_eq!(page.total, 3);
    assert_eq!(page.products.iter().map(|p| p.id).collect::<Vec<_>>(), vec![first, second]);
    let rest = store.page(2, 2).await.expect("page");
    assert_eq!(rest.products.iter().map(|p| p.id).collect::<Vec<_>>(), vec![third]);
    assert!(store.page(3, 10).await.expect("page").products.is_empty());

    let edit = ProductEdit {
        name: Some(ProductName::parse("Green tea").expect("name")),
        price: Some(Price::new(150).expect("price")),
        restock: Some(Count::new(3).expect("count")),
    };
    let edited = store.edit(first, edit).await.expect("edit");
    assert_eq!(
        (edited.name.as_str(), edited.price.get(), edited.available.get()),
        ("Green tea", 150, 8)
    );
    let reread = store.product(first).await.expect("read").expect("exists");
    assert_eq!(reread, edited);

    let missing = ProductId::new(999).expect("id");
    let unknown = store.edit(missing, ProductEdit::default()).await;
    assert!(matches!(unknown, Err(EditProductError::UnknownProduct(_))), "{unknown:?}");
    assert_eq!(store.product(missing).await.expect("read"), None);
}

pub async fn restock_that_would_overflow_changes_nothing<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let product = product_with(&store, 1, i64::MAX).await;
    place(&store, form(&alice, "o1", &[(product, 10, 1)], t0(), TTL), None).await.expect("order");
    // 10 units are reserved: available alone has room, but available + reserved is at the
    // maximum, and the reserved units come back on expiry, so even 1 more would overflow.
    let edit = ProductEdit {
        name: Some(ProductName::parse("Renamed").expect("name")),
        restock: Some(Count::new(1).expect("count")),
        ..ProductEdit::default()
    };
    let result = store.edit(product, edit).await;
    assert!(matches!(result, Err(EditProductError::Amount(AmountError::Overflow))), "{result:?}");
    let unchanged = store.product(product).await.expect("read").expect("exists");
    assert_eq!(unchanged.available.get(), i64::MAX - 10);
    assert_eq!(unchanged.name.as_str(), "Contract tea", "a refused edit renames nothing");
}

pub async fn order_reserves_every_line_or_none<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 10_000).await;
    let tea = product_with(&store, 100, 5).await;
    let cake = product_with(&store, 200, 1).await;

    let too_much = form(&alice, "o1", &[(tea, 2, 100), (cake, 2, 200)], t0(), TTL);
    let result = place(&store, too_much, None).await;
    assert!(matches!(result, Err(PlaceOrderError::LackOfStock(id)) if id == cake), "{result:?}");
    assert_eq!((available(&store, tea).await, available(&store, cake).await), (5, 1));
    assert_eq!(pending_id(&store, &alice, t0()).await, None);

    let order = form(&alice, "o2", &[(tea, 2, 100), (cake, 1, 200)], t0(), TTL);
    let placed = place(&store, order.clone(), None).await.expect("order");
    assert_eq!(placed, order);
    assert_eq!((available(&store, tea).await, available(&store, cake).await), (3, 0));
    assert_eq!(pending_id(&store, &alice, t0()).await.as_deref(), Some("o2"));
    let stored = store.pending(alice.clone(), t0()).await.expect("read").expect("pending");
    assert_eq!(stored, order, "the form reads back exactly");
    assert_eq!(balance(&store, &alice).await, 10_000, "ordering does not debit");
}

pub async fn order_checks_stock_before_points<S: Store>(store: Arc<S>) {
    let poor = user_with(&store, "poor", 10).await;
    let tea = product_with(&store, 100, 1).await;
    let both_short = form(&poor, "o1", &[(tea, 2, 100)], t0(), TTL);
    let result = place(&store, both_short, None).await;
    assert!(matches!(result, Err(PlaceOrderError::LackOfStock(_))), "{result:?}");
}

pub async fn order_without_enough_points_changes_nothing<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 299).await;
    let tea = product_with(&store, 100, 5).await;
    place(&store, form(&alice, "o1", &[(tea, 1, 100)], t0(), TTL), None)
        .await
        .expect("first order");

    let result = place(&store, form(&alice, "o2", &[(tea, 3, 100)], t0(), TTL), None).await;
    assert!(matches!(result, Err(PlaceOrderError::LackOfPoints)), "{result:?}");
    assert_eq!(available(&store, tea).await, 4, "the old reservation still holds");
    assert_eq!(pending_id(&store, &alice, t0()).await.as_deref(), Some("o1"));
    assert_eq!(balance(&store, &alice).await, 299);

    let exact = place(&store, form(&alice, "o3", &[(tea, 2, 100)], t0(), TTL), None).await;
    assert!(exact.is_ok(), "a balance equal to the total is enough: {exact:?}");
}

pub async fn order_by_unknown_user_or_for_unknown_product_changes_nothing<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let tea = product_with(&store, 100, 5).await;
    let ghost = ProductId::new(tea.get() + 1_000).expect("id");

    let result = place(&store, form(&uid("ghost"), "o1", &[(tea, 1, 100)], t0(), TTL), None).await;
    assert!(matches!(result, Err(PlaceOrderError::UnknownUser(_))), "{result:?}");
    assert_eq!(store.balance(uid("ghost")).await.expect("read"), None);

    let result =
        place(&store, form(&alice, "o2", &[(tea, 1, 100), (ghost, 1, 100)], t0(), TTL), None).await;
    assert!(
        matches!(result, Err(PlaceOrderError::UnknownProduct(id)) if id == ghost),
        "{result:?}"
    );
    assert_eq!(available(&store, tea).await, 5);
    assert_eq!(pending_id(&store, &alice, t0()).await, None);
}

pub async fn new_order_replaces_the_pending_form_counting_its_release<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 10_000).await;
    let tea = product_with(&store, 100, 5).await;
    let cake = product_with(&store, 50, 5).await;
    place(&store, form(&alice, "o1", &[(tea, 5, 100)], t0(), TTL), None)
        .await
        .expect("first order");
    assert_eq!(available(&store, tea).await, 0);

    // All five units are held by the old form; the new order may take them back.
    let second = form(&alice, "o2", &[(tea, 4, 100), (cake, 1, 50)], t0() + secs(1), TTL);
    place(&store, second, None).await.expect("replacement");
    assert_eq!((available(&store, tea).await, available(&store, cake).await), (1, 4));
    assert_eq!(pending_id(&store, &alice, t0() + secs(1)).await.as_deref(), Some("o2"));

    let stale = store
        .commit_payment(
            plan(&form(&alice, "o1", &[(tea, 5, 100)], t0(), TTL), t0() + secs(2)),
            None,
        )
        .await;
    assert!(matches!(stale, Err(PayError::NoPendingOrder)), "the replaced form is gone: {stale:?}");
    assert_eq!(balance(&store, &alice).await, 10_000);
}

pub async fn failed_replacement_keeps_the_old_form<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 10_000).await;
    let tea = product_with(&store, 100, 5).await;
    place(&store, form(&alice, "o1", &[(tea, 3, 100)], t0(), TTL), None)
        .await
        .expect("first order");

    let result = place(&store, form(&alice, "o2", &[(tea, 6, 100)], t0(), TTL), None).await;
    assert!(matches!(result, Err(PlaceOrderError::LackOfStock(_))), "{result:?}");
    assert_eq!(available(&store, tea).await, 2);
    assert_eq!(pending_id(&store, &alice, t0()).await.as_deref(), Some("o1"));
}

pub async fn pay_debits_settles_records_sales_and_queues_one_event<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let tea = product_with(&store, 100, 5).await;
    let order = form(&alice, "o1", &[(tea, 3, 100)], t0(), TTL);
    place(&store, order.clone(), None).await.expect("order");

    let the_plan = plan(&order, t0() + secs(10));
    let receipt = store.commit_payment(the_plan.clone(), None).await.expect("payment");
    assert_eq!(receipt.balance.get(), 700);
    assert_eq!(receipt.payment, the_plan.payment);
    assert_eq!(balance(&store, &alice).await, 700);
    assert_eq!(available(&store, tea).await, 2, "sold units do not come back");
    assert_eq!(pending_id(&store, &alice, t0() + secs(10)).await, None);
    assert_eq!(sold(&store, tea).await, 3);
    let events = claim(&*store, t0() + secs(10), t0() + secs(70), 10).await;
    let events: Vec<_> = events.into_iter().map(|e| e.event).collect();
    assert_eq!(events, vec![the_plan.event], "exactly one event, exactly as planned");

    let swept = store.expire_due(t0() + secs(3_600), 100).await.expect("sweep");
    assert_eq!(swept, 0, "a paid form never expires");
    assert_eq!(available(&store, tea).await, 2);
}

pub async fn pay_succeeds_once<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let tea = product_with(&store, 100, 5).await;
    let order = form(&alice, "o1", &[(tea, 1, 100)], t0(), TTL);
    place(&store, order.clone(), None).await.expect("order");
    store.commit_payment(plan(&order, t0() + secs(1)), None).await.expect("first payment");

    let again = store.commit_payment(plan(&order, t0() + secs(2)), None).await;
    assert!(matches!(again, Err(PayError::NoPendingOrder)), "{again:?}");
    assert_eq!(balance(&store, &alice).await, 900);
    assert_eq!(sold(&store, tea).await, 1);
    assert_eq!(queued_events(&store).await, 1);
}

pub async fn pay_without_enough_points_changes_nothing<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 100).await;
    let tea = product_with(&store, 100, 5).await;
    let order = form(&alice, "o1", &[(tea, 1, 100)], t0(), TTL);
    place(&store, order.clone(), None).await.expect("order");

    let mut too_dear = plan(&order, t0() + secs(1));
    too_dear.payment.amount = points(101);
    let result = store.commit_payment(too_dear, None).await;
    assert!(matches!(result, Err(PayError::LackOfPoints)), "{result:?}");
    assert_eq!(balance(&store, &alice).await, 100);
    assert_eq!(available(&store, tea).await, 4);
    assert_eq!(pending_id(&store, &alice, t0() + secs(1)).await.as_deref(), Some("o1"));
    assert_eq!(sold(&store, tea).await, 0);
    assert_eq!(queued_events(&store).await, 0);

    store.commit_payment(plan(&order, t0() + secs(2)), None).await.expect("an exact balance pays");
    assert_eq!(balance(&store, &alice).await, 0);
}

pub async fn pay_of_a_replaced_form_fails<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let tea = product_with(&store, 100, 5).await;
    let first = form(&alice, "o1", &[(tea, 1, 100)], t0(), TTL);
    place(&store, first.clone(), None).await.expect("first order");
    place(&store, form(&alice, "o2", &[(tea, 1, 100)], t0(), TTL), None)
        .await
        .expect("second order");

    let result = store.commit_payment(plan(&first, t0() + secs(1)), None).await;
    assert!(matches!(result, Err(PayError::NoPendingOrder)), "{result:?}");
    assert_eq!(balance(&store, &alice).await, 1_000);
    assert_eq!(available(&store, tea).await, 4);
}

pub async fn expiry_is_due_at_the_instant_and_releases_once<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let bob = user_with(&store, "bob", 1_000).await;
    let tea = product_with(&store, 100, 5).await;
    place(&store, form(&alice, "a1", &[(tea, 2, 100)], t0(), secs(60)), None).await.expect("order");
    place(&store, form(&bob, "b1", &[(tea, 1, 100)], t0(), secs(61)), None).await.expect("order");
    assert_eq!(available(&store, tea).await, 2);

    assert_eq!(store.expire_due(t0() + secs(59), 100).await.expect("sweep"), 0);
    assert_eq!(pending_id(&store, &alice, t0() + secs(59)).await.as_deref(), Some("a1"));
    assert_eq!(pending_id(&store, &alice, t0() + secs(60)).await, None, "gone at the instant");

    assert_eq!(store.expire_due(t0() + secs(60), 100).await.expect("sweep"), 1);
    assert_eq!(available(&store, tea).await, 4);
    assert_eq!(store.expire_due(t0() + secs(60), 100).await.expect("sweep"), 0, "released once");
    assert_eq!(available(&store, tea).await, 4);
    assert_eq!(pending_id(&store, &bob, t0() + secs(60)).await.as_deref(), Some("b1"));

    assert_eq!(store.expire_due(t0() + secs(3_600), 100).await.expect("sweep"), 1);
    assert_eq!(available(&store, tea).await, 5);
}

pub async fn expired_form_cannot_be_paid_and_paid_form_cannot_expire<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let tea = product_with(&store, 100, 5).await;
    let order = form(&alice, "o1", &[(tea, 1, 100)], t0(), secs(60));
    place(&store, order.clone(), None).await.expect("order");

    // Due but not yet swept: paying at the expiry instant must still fail.
    let late = store.commit_payment(plan(&order, t0() + secs(60)), None).await;
    assert!(matches!(late, Err(PayError::NoPendingOrder)), "{late:?}");
    assert_eq!(balance(&store, &alice).await, 1_000);
    assert_eq!(store.expire_due(t0() + secs(60), 100).await.expect("sweep"), 1);
    let after_sweep = store.commit_payment(plan(&order, t0() + secs(59)), None).await;
    assert!(matches!(after_sweep, Err(PayError::NoPendingOrder)), "{after_sweep:?}");
    assert_eq!((balance(&store, &alice).await, available(&store, tea).await), (1_000, 5));
    assert_eq!(sold(&store, tea).await, 0);
    assert_eq!(queued_events(&store).await, 0);
}

pub async fn ranking_sums_paid_units_in_the_window_ties_by_id<S: Store>(store: Arc<S>) {
    let buyer = user_with(&store, "buyer", 1_000_000).await;
    let products = [
        product_with(&store, 1, 100).await,
        product_with(&store, 1, 100).await,
        product_with(&store, 1, 100).await,
        product_with(&store, 1, 100).await,
    ];
    let [a, b, c, d] = products;
    let now = t0() + TimeDelta::days(10);
    let mut n = 0;
    let mut buy = |lines: Vec<(ProductId, i64, i64)>, at| {
        n += 1;
        (form(&buyer, &format!("o{n}"), &lines, at, TTL), at)
    };
    let purchases = [
        buy(vec![(a, 2, 1), (b, 5, 1)], now - TimeDelta::hours(1)),
        buy(vec![(a, 3, 1)], now - TimeDelta::days(2)),
        buy(vec![(c, 5, 1)], now - secs(5)),
        buy(vec![(d, 50, 1)], now - TimeDelta::days(4)),
    ];
    for (order, at) in &purchases {
        place(&store, order.clone(), None).await.expect("order");
        store.commit_payment(plan(order, *at + secs(1)), None).await.expect("payment");
    }
    // Reserved but unpaid units do not count.
    place(&store, form(&buyer, "unpaid", &[(d, 20, 1)], now, TTL), None).await.expect("order");

    let since = now - TimeDelta::days(3);
    let ranked = store.top_sellers(since, 10).await.expect("ranking");
    let summary: Vec<(ProductId, i64)> =
        ranked.iter().map(|r: &RankedProduct| (r.product.id, r.sold)).collect();
    assert_eq!(
        summary,
        vec![(a, 5), (b, 5), (c, 5)],
        "ties by id; old sales and reservations excluded"
    );
    assert_eq!(ranked[0].product.available.get(), 95, "products carry their current stock");
    let top_two = store.top_sellers(since, 2).await.expect("ranking");
    assert_eq!(top_two.iter().map(|r| r.product.id).collect::<Vec<_>>(), vec![a, b]);
}

/// A store may keep the sums of hours that are over; a payment recorded in such an hour later
/// (a test's clock, or an instance whose clock is behind) must still count at once.
/// `clock` is the store's own clock (what a store may tell the hours that are over by), at
/// `t0()`.
pub async fn ranking_counts_a_payment_in_an_hour_already_summed<S: Store>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let tea = product_with(&store, 10, 100).await;
    clock.advance(TimeDelta::days(1));
    let now = t0() + TimeDelta::days(1);
    assert_eq!(clock.now(), now, "the store's clock starts at t0()");
    let since = now - TimeDelta::days(3);
    let sold_at_now = |store: Arc<S>| async move {
        let ranked = store.top_sellers(since, 10).await.expect("ranking");
        ranked.iter().find(|r| r.product.id == tea).map_or(0, |r| r.sold)
    };
    one_payment(&store, "u1", tea, secs(0)).await;
    assert_eq!(sold_at_now(store.clone()).await, 1);
    assert_eq!(sold_at_now(store.clone()).await, 1, "asked again, nothing new");
    one_payment(&store, "u2", tea, secs(60)).await;
    assert_eq!(sold_at_now(store.clone()).await, 2, "the same hour, a day before `now`");
    one_payment(&store, "u3", tea, TimeDelta::hours(23) + TimeDelta::minutes(30)).await;
    assert_eq!(sold_at_now(store.clone()).await, 3, "the current hour");
    one_payment(&store, "u4", tea, -TimeDelta::days(1)).await;
    assert_eq!(sold_at_now(store.clone()).await, 4, "an older hour, still in the window");
}

pub async fn outbox_leases_retries_and_delivers_each_event<S: Store>(store: Arc<S>) {
    let tea = product_with(&store, 10, 10).await;
    let mut ids = Vec::new();
    for (i, name) in ["u1", "u2", "u3"].iter().enumerate() {
        ids.push(one_payment(&store, name, tea, secs(i as i64)).await.event.event_id);
    }
    let claim_ids = |entries: Vec<OutboxEntry>| {
        entries.into_iter().map(|e| e.event.event_id).collect::<Vec<_>>()
    };
    let now = t0() + secs(10);

    // Oldest first, up to the limit; the claimed ones are leased until `now + 30 s`.
    let first = claim(&*store, now, now + secs(30), 2).await;
    assert_eq!(first.iter().map(|e| e.attempts).collect::<Vec<_>>(), vec![0, 0]);
    assert_eq!(claim_ids(first), ids[..2].to_vec());
    let rest = claim(&*store, now, now + secs(30), 10).await;
    assert_eq!(claim_ids(rest), ids[2..].to_vec(), "leased events are not claimed twice");
    assert!(claim(&*store, now + secs(29), now + secs(60), 10).await.is_empty());

    // One delivered, one failed with a retry in 5 s, one whose relay vanished.
    store.mark_delivered(vec![ids[0].clone()], now + secs(1)).await.expect("delivered");
    store
        .mark_failed(vec![FailedAttempt {
            event_id: ids[1].clone(),
            retry_at: now + secs(5),
            error: "HTTP 503".into(),
        }])
        .await
        .expect("failed");
    let backlog = store.backlog().await.expect("backlog");
    assert_eq!((backlog.undelivered, backlog.failing), (2, 1));
    assert_eq!(backlog.oldest, Some(t0() + secs(1)));
    assert_eq!(backlog.last_error.as_deref(), Some("HTTP 503"));

    let retried = claim(&*store, now + secs(5), now + secs(35), 10).await;
    assert_eq!(
        retried.iter().map(|e| (e.event.event_id.clone(), e.attempts)).collect::<Vec<_>>(),
        vec![(ids[1].clone(), 1)]
    );
    let orphaned = claim(&*store, now + secs(30), now + secs(60), 10).await;
    assert_eq!(
        claim_ids(orphaned),
        ids[2..].to_vec(),
        "an expired lease makes the event due again"
    );
    let event = &retried[0].event;
    let the_plan =
        plan(&form(&uid("u2"), "order-u2", &[(tea, 1, 10)], t0() + secs(1), TTL), t0() + secs(1));
    assert_eq!(event.payment, the_plan.payment, "the event carries the whole payment");

    // Several in one call; an id already delivered is ignored.
    let both = vec![ids[1].clone(), ids[2].clone()];
    store.mark_delivered(both, now + secs(31)).await.expect("delivered");
    store
        .mark_delivered(vec![ids[2].clone()], now + secs(32))
        .await
        .expect("marking twice is harmless");
    assert_eq!(store.backlog().await.expect("backlog"), OutboxBacklog::default());
    assert!(
        claim(&*store, now + secs(999), now + secs(9_999), 10).await.is_empty(),
        "delivered events are never claimed again"
    );
}

pub async fn delivered_events_are_purged_after_retention<S: Store>(store: Arc<S>) {
    let tea = product_with(&store, 10, 10).await;
    let old = one_payment(&store, "old", tea, secs(0)).await.event.event_id;
    let recent = one_payment(&store, "recent", tea, secs(1)).await.event.event_id;
    let pending = one_payment(&store, "pending", tea, secs(2)).await.event.event_id;
    claim(&*store, t0() + secs(5), t0() + secs(60), 10).await;
    store.mark_delivered(vec![old], t0() + secs(10)).await.expect("delivered");
    store.mark_delivered(vec![recent], t0() + secs(100)).await.expect("delivered");

    assert_eq!(store.purge_delivered(t0() + secs(50), 100).await.expect("purge"), 1);
    assert_eq!(store.purge_delivered(t0() + secs(50), 100).await.expect("purge"), 0);
    assert_eq!(store.purge_delivered(t0() + secs(1_000), 100).await.expect("purge"), 1);
    let backlog = store.backlog().await.expect("backlog");
    assert_eq!(backlog.undelivered, 1, "undelivered events are never purged");
    let claimed = claim(&*store, t0() + secs(61), t0() + secs(120), 10).await;
    assert_eq!(claimed.into_iter().map(|e| e.event.event_id).collect::<Vec<_>>(), vec![pending]);
}

pub async fn concurrent_claims_never_share_an_event<S: Store>(store: Arc<S>) {
    let tea = product_with(&store, 10, 100).await;
    for i in 0..40 {
        one_payment(&store, &format!("buyer{i}"), tea, secs(i)).await;
    }
    let now = t0() + secs(100);
    let mut relays = JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        relays.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = claim(&*store, now, now + secs(60), 3).await;
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|e| e.event.event_id));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(claimed) = relays.join_next().await {
        all.extend(claimed.expect("task"));
    }
    let distinct: std::collections::HashSet<_> = all.iter().cloned().collect();
    assert_eq!((all.len(), distinct.len()), (40, 40), "every event claimed by exactly one relay");
}

pub async fn health_reports_a_reachable_store<S: Store>(store: Arc<S>) {
    store.check().await.expect("a fresh store is healthy");
}

pub async fn concurrent_orders_never_oversell<S: Store>(store: Arc<S>) {
    let tea = product_with(&store, 10, 50).await;
    let mut users = Vec::new();
    for i in 0..200 {
        users.push(user_with(&store, &format!("buyer{i}"), 1_000).await);
    }
    let mut tasks = JoinSet::new();
    for (i, user) in users.into_iter().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            place(&store, form(&user, &format!("o{i}"), &[(tea, 1, 10)], t0(), TTL), None).await
        });
    }
    let (mut accepted, mut short) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.expect("task") {
            Ok(_) => accepted += 1,
            Err(PlaceOrderError::LackOfStock(_)) => short += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((accepted, short), (50, 150));
    assert_eq!(available(&store, tea).await, 0);
    assert_eq!(store.expire_due(t0() + TTL, 1_000).await.expect("sweep"), 50);
    assert_eq!(available(&store, tea).await, 50, "every reservation comes back exactly once");
}

pub async fn two_sweepers_release_each_form_once<S: Store>(store: Arc<S>) {
    let tea = product_with(&store, 10, 100).await;
    let mut users = Vec::new();
    for i in 0..60 {
        let user = user_with(&store, &format!("buyer{i}"), 100).await;
        let order = form(&user, &format!("o{i}"), &[(tea, 1, 10)], t0(), secs(i % 7 + 1));
        place(&store, order, None).await.expect("order");
        users.push(user);
    }
    assert_eq!(available(&store, tea).await, 40);
    let mut sweepers = JoinSet::new();
    for _ in 0..2 {
        let store = store.clone();
        sweepers.spawn(async move {
            let mut expired = 0;
            loop {
                match store.expire_due(t0() + secs(60), 4).await.expect("sweep") {
                    0 => return expired,
                    n => expired += n,
                }
            }
        });
    }
    let mut total = 0;
    while let Some(expired) = sweepers.join_next().await {
        total += expired.expect("task");
    }
    assert_eq!(total, 60, "each form expired by exactly one sweeper");
    assert_eq!(available(&store, tea).await, 100, "each reservation released exactly once");
    for user in &users {
        assert_eq!(pending_id(&store, user, t0()).await, None);
    }
}

pub async fn concurrent_charges_are_never_lost<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 0).await;
    let mut tasks = JoinSet::new();
    for _ in 0..200 {
        let (store, alice) = (store.clone(), alice.clone());
        tasks.spawn(async move { store.charge(alice, points(1), None).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("charge");
    }
    assert_eq!(balance(&store, &alice).await, 200);
}

pub async fn concurrent_pays_of_one_form_succeed_once<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let tea = product_with(&store, 100, 5).await;
    let order = form(&alice, "o1", &[(tea, 2, 100)], t0(), TTL);
    place(&store, order.clone(), None).await.expect("order");
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let (store, mut the_plan) = (store.clone(), plan(&order, t0() + secs(1)));
        the_plan.payment.id = domain::values::PaymentId::new(format!("pay-{i}"));
        the_plan.event.event_id = domain::values::EventId::new(format!("event-{i}"));
        tasks.spawn(async move { store.commit_payment(the_plan, None).await });
    }
    let mut paid = 0;
    while let Some(result) = tasks.join_next().await {
        match result.expect("task") {
            Ok(_) => paid += 1,
            Err(PayError::NoPendingOrder) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(paid, 1);
    assert_eq!(balance(&store, &alice).await, 800);
    assert_eq!(sold(&store, tea).await, 2);
    assert_eq!(queued_events(&store).await, 1);
    assert_eq!(available(&store, tea).await, 3);
}

pub async fn concurrent_orders_by_one_user_leave_one_form<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000_000).await;
    let tea = product_with(&store, 10, 100).await;
    let mut tasks = JoinSet::new();
    for i in 1..=40 {
        let (store, alice) = (store.clone(), alice.clone());
        tasks.spawn(async move {
            place(&store, form(&alice, &format!("o{i}"), &[(tea, i, 10)], t0(), TTL), None).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("every replacement fits in the stock");
    }
    let pending =
        store.pending(alice.clone(), t0()).await.expect("read").expect("one pending form");
    let held = pending.lines[0].count.get();
    assert_eq!(available(&store, tea).await, 100 - held, "only the surviving form holds stock");
    assert_eq!(store.expire_due(t0() + TTL, 1_000).await.expect("sweep"), 1, "exactly one form");
    assert_eq!(available(&store, tea).await, 100, "no leaked reservation");
}

fn remember(
    user: &domain::values::UserId,
    key: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<Remember> {
    let key = IdempotencyKey::new(user.clone(), key, format!("fp-{key}")).expect("key");
    Some(Remember { key, at, expires_at: at + TimeDelta::hours(24) })
}

pub async fn a_key_is_stored_with_its_effect_and_taken_once<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 0).await;
    let tea = product_with(&store, 100, 5).await;
    let recall = |key: &str, at| store.recall(alice.clone(), key.to_owned(), at);

    let charged = store.charge(alice.clone(), points(1_000), remember(&alice, "c1", t0())).await;
    assert_eq!(charged.expect("charged").get(), 1_000);
    let record = recall("c1", t0()).await.expect("recall").expect("stored");
    assert_eq!(record.fingerprint, "fp-c1");
    assert_eq!(record.outcome, Outcome::Charged { balance: points(1_000) });
    let again = store.charge(alice.clone(), points(1_000), remember(&alice, "c1", t0())).await;
    assert!(
        matches!(again, Err(ChargeError::Idempotency(IdempotencyError::AlreadyUsed))),
        "{again:?}"
    );
    assert_eq!(balance(&store, &alice).await, 1_000, "a taken key changes nothing");

    let order = form(&alice, "o1", &[(tea, 2, 100)], t0(), TTL);
    place(&store, order.clone(), remember(&alice, "o1", t0())).await.expect("order");
    let record = recall("o1", t0()).await.expect("recall").expect("stored");
    assert_eq!(record.outcome, Outcome::Ordered(order.clone()));
    let twice = place(
        &store,
        form(&alice, "o2", &[(tea, 1, 100)], t0(), TTL),
        remember(&alice, "o1", t0()),
    )
    .await;
    assert!(
        matches!(twice, Err(PlaceOrderError::Idempotency(IdempotencyError::AlreadyUsed))),
        "{twice:?}"
    );
    assert_eq!(pending_id(&store, &alice, t0()).await.as_deref(), Some("o1"));
    assert_eq!(available(&store, tea).await, 3);

    let receipt = store
        .commit_payment(plan(&order, t0() + secs(1)), remember(&alice, "p1", t0()))
        .await
        .expect("paid");
    let record = recall("p1", t0()).await.expect("recall").expect("stored");
    assert_eq!(record.outcome, Outcome::Paid(receipt));
    let ordered = recall("o1", t0()).await.expect("recall").expect("still stored");
    assert!(
        matches!(ordered.outcome, Outcome::Ordered(o) if o.id == order.id && o.lines == order.lines),
        "an order's outcome outlives its form"
    );
    assert_eq!(recall("nope", t0()).await.expect("recall"), None);
}

pub async fn a_rejected_call_stores_no_key<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 1_000).await;
    let tea = product_with(&store, 100, 1).await;
    let too_many = form(&alice, "o1", &[(tea, 2, 100)], t0(), TTL);
    let result = place(&store, too_many, remember(&alice, "k", t0())).await;
    assert!(matches!(result, Err(PlaceOrderError::LackOfStock(_))), "{result:?}");
    assert_eq!(store.recall(alice.clone(), "k".into(), t0()).await.expect("recall"), None);
    let fits = form(&alice, "o2", &[(tea, 1, 100)], t0(), TTL);
    place(&store, fits, remember(&alice, "k", t0())).await.expect("the key is still free");
}

pub async fn expired_keys_are_free_again_and_purged<S: Store>(store: Arc<S>) {
    let alice = user_with(&store, "alice", 0).await;
    let bob = user_with(&store, "bob", 0).await;
    let at = t0();
    let short = |user: &domain::values::UserId, key: &str, at: chrono::DateTime<chrono::Utc>| {
        remember(user, key, at).map(|r| Remember { expires_at: at + secs(10), ..r })
    };
    store.charge(alice.clone(), points(5), short(&alice, "k", at)).await.expect("charge");
    store.charge(bob.clone(), points(7), short(&bob, "k", at)).await.expect("same key, other user");
    assert!(store.recall(alice.clone(), "k".into(), at + secs(9)).await.expect("recall").is_some());
    assert_eq!(store.recall(alice.clone(), "k".into(), at + secs(10)).await.expect("recall"), None);
    let later = at + secs(11);
    let balance = store.charge(alice.clone(), points(5), short(&alice, "k", later)).await;
    assert_eq!(balance.expect("an expired key is free").get(), 10);
    assert_eq!(store.purge_expired(at + secs(15), 100).await.expect("purge"), 1, "bob's");
    assert_eq!(store.purge_expired(at + secs(30), 100).await.expect("purge"), 1, "alice's second");
    assert_eq!(store.purge_expired(at + secs(30), 100).await.expect("purge"), 0);
}
