//! Use-case tests against mockall mocks of every port: each error path, and what each use case
//! hands to its port.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::anyhow;
use chrono::{DateTime, TimeDelta, Utc};
use mockall::predicate::eq;

use super::*;
use crate::model::{sales_hour, OrderLine, OrderStatus};
use crate::ports::{
    MockClock, MockHealthProbe, MockIdGenerator, MockIdempotencyStore, MockOrderRepository,
    MockOutbox, MockPaymentRepository, MockProductRepository, MockSalesRanking, MockUserRepository,
};
use crate::values::{AmountError, Price, ProductName, Stock};

use crate::fixtures::{count, pid, points, shelf, t0, user};

fn product(id: i64, price: i64, available: i64) -> Product {
    Product {
        id: pid(id),
        name: ProductName::parse(&format!("product {id}")).expect("valid name"),
        price: Price::new(price).expect("valid price"),
        available: Stock::new(available).expect("valid stock"),
    }
}

fn items(lines: &[(i64, i64)]) -> OrderItems {
    OrderItems::new(lines.iter().map(|&(p, c)| (pid(p), count(c)))).expect("valid items")
}

fn pending_form(expires_at: DateTime<Utc>) -> Order {
    Order {
        id: OrderId::new("order-1"),
        user_id: user("alice"),
        lines: vec![
            OrderLine { product_id: pid(1), count: count(2), price: Price::new(100).expect("p") },
            OrderLine { product_id: pid(2), count: count(1), price: Price::new(50).expect("p") },
        ],
        total: points(250),
        created_at: expires_at - TimeDelta::seconds(600),
        expires_at,
        status: OrderStatus::Pending,
    }
}

/// The mocks of every port; tests set expectations, then turn them into a [`Mall`]. A port
/// call without an expectation panics, so "never reaches the store" is asserted for free.
#[derive(Default)]
struct Ports {
    users: MockUserRepository,
    products: MockProductRepository,
    orders: MockOrderRepository,
    payments: MockPaymentRepository,
    ranking: MockSalesRanking,
    outbox: MockOutbox,
    idempotency: MockIdempotencyStore,
    health: MockHealthProbe,
}

impl Ports {
    fn known_user(mut self, balance: i64) -> Self {
        self.users.expect_balance().returning(move |_| Ok(Some(points(balance))));
        self
    }

    fn unknown_user(mut self) -> Self {
        self.users.expect_balance().returning(|_| Ok(None));
        self
    }

    fn mall_at(self, now: DateTime<Utc>) -> Mall {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now);
        let mut ids = MockIdGenerator::new();
        let next = AtomicU64::new(1);
        ids.expect_new_id()
            .returning(move || format!("id-{}", next.fetch_add(1, Ordering::Relaxed)));
        Mall::new(self.stores(), Arc::new(clock), Arc::new(ids), Settings::default())
    }

    fn stores(self) -> Stores {
        Stores {
            users: Arc::new(self.users),
            products: Arc::new(self.products),
            orders: Arc::new(self.orders),
            payments: Arc::new(self.payments),
            ranking: Arc::new(self.ranking),
            outbox: Arc::new(self.outbox),
            idempotency: Arc::new(self.idempotency),
            health: Arc::new(self.health),
        }
    }

    fn mall(self) -> Mall {
        self.mall_at(t0())
    }
}

#[tokio::test]
async fn register_reports_a_taken_id() {
    let mut ports = Ports::default();
    ports
        .users
        .expect_register()
        .with(eq(user("alice")))
        .returning(|id| Err(RegisterError::AlreadyRegistered(id)));
    let result = ports.mall().register(user("alice")).await;
    assert!(matches!(result, Err(RegisterError::AlreadyRegistered(id)) if id == user("alice")));
}

#[tokio::test]
async fn charge_returns_the_new_balance_and_passes_errors_through() {
    let mut ports = Ports::default();
    ports
        .users
        .expect_charge()
        .with(eq(user("alice")), eq(points(5)), eq(None))
        .returning(|_, _, _| Ok(points(15)));
    ports
        .users
        .expect_charge()
        .with(eq(user("bob")), eq(points(5)), eq(None))
        .returning(|id, _, _| Err(ChargeError::UnknownUser(id)));
    ports
        .users
        .expect_charge()
        .with(eq(user("rich")), eq(points(5)), eq(None))
        .returning(|_, _, _| Err(ChargeError::Amount(AmountError::Overflow)));
    let mall = ports.mall();
    assert_eq!(mall.charge(user("alice"), points(5), None).await.ok(), Some(points(15)));
    assert!(matches!(
        mall.charge(user("bob"), points(5), None).await,
        Err(ChargeError::UnknownUser(_))
    ));
    assert!(matches!(
        mall.charge(user("rich"), points(5), None).await,
        Err(ChargeError::Amount(AmountError::Overflow))
    ));
}

#[tokio::test]
async fn balance_of_an_unknown_user_is_an_error_not_zero() {
    let mall = Ports::default().unknown_user().mall();
    assert!(matches!(mall.balance(user("ghost")).await, Err(BalanceError::UnknownUser(_))));
    let mall = Ports::default().known_user(42).mall();
    assert_eq!(mall.balance(user("alice")).await.ok(), Some(points(42)));
}

#[tokio::test]
async fn store_failures_surface_as_unexpected() {
    let mut ports = Ports::default();
    ports.users.expect_balance().returning(|_| Err(anyhow!("connection refused")));
    ports
        .orders
        .expect_place()
        .returning(|_, _| Err(PlaceOrderError::Unexpected(anyhow!("connection refused"))));
    let mall = ports.mall();
    assert!(matches!(mall.balance(user("alice")).await, Err(BalanceError::Unexpected(_))));
    assert!(matches!(
        mall.place_order(user("alice"), items(&[(1, 1)]), None).await,
        Err(PlaceOrderError::Unexpected(_))
    ));
}

#[tokio::test]
async fn product_lookup_reports_an_unknown_product() {
    let mut ports = Ports::default();
    ports.products.expect_product().with(eq(pid(7))).returning(|_| Ok(None));
    let result = ports.mall().product(pid(7)).await;
    assert!(matches!(result, Err(ProductLookupError::UnknownProduct(id)) if id == pid(7)));
}

#[tokio::test]
async fn catalog_caps_the_page_size() {
    let mut ports = Ports::default();
    ports
        .products
        .expect_page()
        .with(eq(40), eq(MAX_PAGE_SIZE))
        .returning(|_, _| Ok(CatalogPage { products: vec![], total: 3 }));
    let page = ports.mall().catalog(40, 5_000).await.expect("page");
    assert_eq!(page.total, 3);
}

#[tokio::test]
async fn edit_product_passes_unknown_product_and_overflow_through() {
    let mut ports = Ports::default();
    ports
        .products
        .expect_edit()
        .with(eq(pid(1)), mockall::predicate::always())
        .returning(|id, _| Err(EditProductError::UnknownProduct(id)));
    ports
        .products
        .expect_edit()
        .with(eq(pid(2)), mockall::predicate::always())
        .returning(|_, _| Err(EditProductError::Amount(AmountError::Overflow)));
    let mall = ports.mall();
    let restock = ProductEdit { restock: Some(count(1)), ..ProductEdit::default() };
    assert!(matches!(
        mall.edit_product(pid(1), restock.clone()).await,
        Err(EditProductError::UnknownProduct(_))
    ));
    assert!(matches!(
        mall.edit_product(pid(2), restock).await,
        Err(EditProductError::Amount(AmountError::Overflow))
    ));
}

#[tokio::test]
async fn place_order_asks_the_store_once_with_the_normalised_items_and_the_expiry() {
    let mut ports = Ports::default();
    ports.orders.expect_place().times(1).returning(|request, _| {
        assert_eq!(request.id, OrderId::new("id-1"));
        assert_eq!(request.user_id, user("alice"));
        assert_eq!(request.items, items(&[(1, 2), (2, 1)]), "one entry per product, ascending");
        assert_eq!(request.created_at, t0());
        assert_eq!(request.expires_at, t0() + TimeDelta::seconds(600));
        let shelves = [(pid(1), shelf(100, 0)), (pid(2), shelf(50, 0))].into_iter().collect();
        crate::rules::price(&request, &shelves)
    });
    let order = ports
        .mall()
        .place_order(user("alice"), items(&[(2, 1), (1, 1), (1, 1)]), None)
        .await
        .expect("order placed");
    assert_eq!(order.total, points(250));
}

#[tokio::test]
async fn place_order_passes_the_stores_verdicts_through() {
    for verdict in [
        PlaceOrderError::UnknownUser(user("alice")),
        PlaceOrderError::UnknownProduct(pid(1)),
        PlaceOrderError::LackOfStock(pid(1)),
        PlaceOrderError::LackOfPoints,
    ] {
        let expected = verdict.to_string();
        let mut ports = Ports::default();
        let mut verdict = Some(verdict);
        ports
            .orders
            .expect_place()
            .times(1)
            .returning(move |_, _| Err(verdict.take().expect("called once")));
        let result = ports.mall().place_order(user("alice"), items(&[(1, 1)]), None).await;
        assert_eq!(result.map(|_| ()).map_err(|e| e.to_string()), Err(expected));
    }
}

#[tokio::test]
async fn pending_order_needs_a_known_user_and_a_live_form() {
    let mall = Ports::default().unknown_user().mall();
    assert!(matches!(
        mall.pending_order(user("ghost")).await,
        Err(PendingOrderError::UnknownUser(_))
    ));

    let mut ports = Ports::default().known_user(0);
    ports.orders.expect_pending().returning(|_, _| Ok(None));
    assert!(matches!(
        ports.mall().pending_order(user("alice")).await,
        Err(PendingOrderError::NoPendingOrder)
    ));
}

#[tokio::test]
async fn pending_order_is_gone_at_the_expiry_instant() {
    for (expires_in, live) in [(1, true), (0, false), (-1, false)] {
        let expires_at = t0() + TimeDelta::milliseconds(expires_in);
        let mut ports = Ports::default().known_user(0);
        ports
            .orders
            .expect_pending()
            .with(eq(user("alice")), eq(t0()))
            .returning(move |_, _| Ok(Some(pending_form(expires_at))));
        let result = ports.mall().pending_order(user("alice")).await;
        assert_eq!(result.is_ok(), live, "expires {expires_in} ms after now");
    }
}

#[tokio::test]
async fn pay_rejects_an_unknown_user() {
    let mut ports = Ports::default().unknown_user();
    ports.orders.expect_pending().returning(|_, _| Ok(None));
    let result = ports.mall().pay(user("ghost"), items(&[(1, 2)]), None).await;
    assert!(matches!(result, Err(PayError::UnknownUser(_))));
}

#[tokio::test]
async fn pay_without_a_pending_form_is_no_pending_order() {
    let mut ports = Ports::default().known_user(1_000);
    ports.orders.expect_pending().returning(|_, _| Ok(None));
    let result = ports.mall().pay(user("alice"), items(&[(1, 2), (2, 1)]), None).await;
    assert!(matches!(result, Err(PayError::NoPendingOrder)));
}

#[tokio::test]
async fn pay_at_the_expiry_instant_fails_without_touching_the_balance() {
    let mut ports = Ports::default().known_user(1_000);
    ports.orders.expect_pending().returning(|_, now| Ok(Some(pending_form(now))));
    let result = ports.mall().pay(user("alice"), items(&[(1, 2), (2, 1)]), None).await;
    assert!(matches!(result, Err(PayError::NoPendingOrder)));
}

#[tokio::test]
async fn pay_with_items_that_differ_from_the_form_is_rejected() {
    for wrong in [&[(1, 2)][..], &[(1, 1), (2, 1)], &[(1, 2), (2, 1), (3, 1)]] {
        let mut ports = Ports::default().known_user(1_000);
        ports
            .orders
            .expect_pending()
            .returning(|_, now| Ok(Some(pending_form(now + TimeDelta::seconds(1)))));
        let result = ports.mall().pay(user("alice"), items(wrong), None).await;
        assert!(matches!(result, Err(PayError::ItemsMismatch)), "{wrong:?}");
    }
}

#[tokio::test]
async fn pay_commits_one_plan_with_the_form_total_and_a_fresh_event_id() {
    let mut ports = Ports::default().known_user(1_000);
    ports
        .orders
        .expect_pending()
        .returning(|_, now| Ok(Some(pending_form(now + TimeDelta::seconds(1)))));
    ports
        .payments
        .expect_commit_payment()
        .times(1)
        .withf(|plan, remember| {
            let p = &plan.payment;
            remember.is_none()
                && p.order_id == OrderId::new("order-1")
                && p.user_id.as_str() == "alice"
                && p.amount.get() == 250
                && p.paid_at == t0()
                && p.lines.len() == 2
                && plan.event.payment == *p
                && plan.event.occurred_at == t0()
                && plan.event.event_id.as_str() != p.id.as_str()
        })
        .returning(|plan, _| Ok(PaymentReceipt { payment: plan.payment, balance: points(750) }));
    let receipt =
        ports.mall().pay(user("alice"), items(&[(2, 1), (1, 2)]), None).await.expect("paid");
    assert_eq!(receipt.balance, points(750));
    assert_eq!(receipt.payment.amount, points(250));
}

#[tokio::test]
async fn pay_passes_the_stores_verdict_through() {
    for verdict in [PayError::LackOfPoints, PayError::NoPendingOrder] {
        let expected = verdict.to_string();
        let mut ports = Ports::default().known_user(0);
        ports
            .orders
            .expect_pending()
            .returning(|_, now| Ok(Some(pending_form(now + TimeDelta::seconds(1)))));
        let mut verdict = Some(verdict);
        ports
            .payments
            .expect_commit_payment()
            .returning(move |_, _| Err(verdict.take().expect("called once")));
        let result = ports.mall().pay(user("alice"), items(&[(1, 2), (2, 1)]), None).await;
        assert_eq!(result.map(|_| ()).map_err(|e| e.to_string()), Err(expected));
    }
}

#[tokio::test]
async fn ranking_asks_for_the_configured_window_and_size() {
    let now = t0() + TimeDelta::minutes(17);
    let mut ports = Ports::default();
    ports
        .ranking
        .expect_top_sellers()
        .with(eq(sales_hour(now - TimeDelta::days(3))), eq(5))
        .returning(|_, _| Ok(vec![RankedProduct { product: product(1, 10, 0), sold: 3 }]));
    let ranked = ports.mall_at(now).ranking().await.expect("ranking");
    assert_eq!(ranked.len(), 1);
}

#[tokio::test]
async fn expiry_sweeps_with_the_clocks_time() {
    let mut ports = Ports::default();
    ports.orders.expect_expire_due().with(eq(t0()), eq(100)).returning(|_, _| Ok(2));
    assert_eq!(ports.mall().expire_due_forms(100).await.ok(), Some(2));
}

#[tokio::test]
async fn health_needs_the_store_and_reports_the_outbox_backlog() {
    let mut ports = Ports::default();
    ports.health.expect_check().returning(|| Ok(()));
    let backlog = crate::model::OutboxBacklog {
        undelivered: 3,
        failing: 1,
        oldest: Some(t0()),
        last_error: Some("HTTP 503".into()),
    };
    let reported = backlog.clone();
    ports.outbox.expect_backlog().returning(move || Ok(reported.clone()));
    let report = ports.mall_at(t0() + TimeDelta::seconds(90)).health().await.expect("healthy");
    assert_eq!(report.outbox, backlog);
    assert_eq!(report.oldest_event_age(), Some(TimeDelta::seconds(90)));

    let mut ports = Ports::default();
    ports.health.expect_check().returning(|| Err(anyhow!("unreachable")));
    assert!(ports.mall().health().await.is_err(), "the backlog is not read from a dead store");
}

fn idem(key: &str, fingerprint: &str) -> crate::idempotency::IdempotencyKey {
    crate::idempotency::IdempotencyKey::new(user("alice"), key, fingerprint.into()).expect("key")
}

fn stored(
    fingerprint: &str,
    outcome: crate::idempotency::Outcome,
) -> crate::idempotency::IdempotencyRecord {
    crate::idempotency::IdempotencyRecord { fingerprint: fingerprint.into(), outcome }
}

#[tokio::test]
async fn a_first_call_with_a_key_asks_the_store_to_remember_it_for_a_day() {
    let mut ports = Ports::default();
    ports.idempotency.expect_recall().times(1).returning(|_, _, _| Ok(None));
    ports
        .users
        .expect_charge()
        .withf(|_, _, remember| {
            remember
                .as_ref()
                .is_some_and(|r| r.key.key() == "k1" && r.expires_at == t0() + TimeDelta::hours(24))
        })
        .times(1)
        .returning(|_, _, _| Ok(points(15)));
    let balance = ports.mall().charge(user("alice"), points(5), Some(idem("k1", "fp"))).await;
    assert_eq!(balance.ok(), Some(points(15)));
}

#[tokio::test]
async fn a_used_key_replays_its_outcome_without_touching_the_balance() {
    let mut ports = Ports::default();
    ports.idempotency.expect_recall().returning(|_, _, _| {
        Ok(Some(stored("fp", crate::idempotency::Outcome::Charged { balance: points(15) })))
    });
    let mall = ports.mall();
    for _ in 0..3 {
        let balance = mall.charge(user("alice"), points(5), Some(idem("k1", "fp"))).await;
        assert_eq!(balance.ok(), Some(points(15)), "the charge mock has no expectation");
    }
}

#[tokio::test]
async fn a_used_key_with_another_request_or_call_is_refused() {
    let mut ports = Ports::default();
    ports.idempotency.expect_recall().returning(|_, _, _| {
        Ok(Some(stored("fp", crate::idempotency::Outcome::Charged { balance: points(15) })))
    });
    let mall = ports.mall();
    let other_body = mall.charge(user("alice"), points(6), Some(idem("k1", "fp-other"))).await;
    assert!(matches!(
        other_body,
        Err(ChargeError::Idempotency(crate::idempotency::IdempotencyError::Mismatch))
    ));
    let other_call = mall.pay(user("alice"), items(&[(1, 1)]), Some(idem("k1", "fp"))).await;
    assert!(matches!(
        other_call,
        Err(PayError::Idempotency(crate::idempotency::IdempotencyError::Mismatch))
    ));
}

#[tokio::test]
async fn a_key_another_instance_used_meanwhile_replays_its_outcome() {
    let mut ports = Ports::default();
    let mut recalls = 0;
    ports.idempotency.expect_recall().times(2).returning(move |_, _, _| {
        recalls += 1;
        Ok((recalls == 2)
            .then(|| stored("fp", crate::idempotency::Outcome::Charged { balance: points(40) })))
    });
    ports.users.expect_charge().times(1).returning(|_, _, _| {
        Err(ChargeError::Idempotency(crate::idempotency::IdempotencyError::AlreadyUsed))
    });
    let balance = ports.mall().charge(user("alice"), points(5), Some(idem("k1", "fp"))).await;
    assert_eq!(balance.ok(), Some(points(40)));
}

#[tokio::test]
async fn a_rejected_call_with_a_key_stays_rejected_and_remembers_nothing() {
    let mut ports = Ports::default().unknown_user();
    ports.orders.expect_pending().returning(|_, _| Ok(None));
    ports.idempotency.expect_recall().times(2).returning(|_, _, _| Ok(None));
    let result = ports.mall().pay(user("alice"), items(&[(1, 1)]), Some(idem("k1", "fp"))).await;
    assert!(matches!(result, Err(PayError::UnknownUser(_))));
}
