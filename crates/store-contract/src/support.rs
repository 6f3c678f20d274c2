//! Builders and probes the scenarios share.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::errors::PlaceOrderError;
use domain::idempotency::Remember;
use domain::model::{
    NewProduct, Order, OrderItems, OrderLine, OrderRequest, OrderStatus, Payment, PaymentCompleted,
    PaymentPlan,
};
pub use domain::ports::Store;
use domain::values::{
    Count, EventId, OrderId, PaymentId, Points, Price, ProductId, ProductName, Stock, UserId,
};

/// A fixed instant the scenarios count from.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
}

pub fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

pub fn uid(raw: &str) -> UserId {
    UserId::parse(raw).expect("valid user id")
}

pub fn points(raw: i64) -> Points {
    Points::new(raw).expect("valid points")
}

pub async fn user_with<S: Store>(store: &Arc<S>, name: &str, balance: i64) -> UserId {
    let id = uid(name);
    store.register(id.clone()).await.expect("register");
    if balance > 0 {
        store.charge(id.clone(), points(balance), None).await.expect("charge");
    }
    id
}

pub async fn product_with<S: Store>(store: &Arc<S>, price: i64, quantity: i64) -> ProductId {
    let product = NewProduct {
        name: ProductName::parse("Contract tea").expect("valid name"),
        price: Price::new(price).expect("valid price"),
        quantity: Stock::new(quantity).expect("valid stock"),
    };
    store.add(product).await.expect("add product").id
}

/// A pending form created at `at` that expires `ttl` later; `lines` are
/// `(product, count, unit price)`.
pub fn form(
    user: &UserId,
    id: &str,
    lines: &[(ProductId, i64, i64)],
    at: DateTime<Utc>,
    ttl: TimeDelta,
) -> Order {
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|&(product_id, count, price)| OrderLine {
            product_id,
            count: Count::new(count).expect("valid count"),
            price: Price::new(price).expect("valid price"),
        })
        .collect();
    let total = lines.iter().map(|l| l.price.get() * l.count.get()).sum();
    Order {
        id: OrderId::new(id),
        user_id: user.clone(),
        lines,
        total: points(total),
        created_at: at,
        expires_at: at + ttl,
        status: OrderStatus::Pending,
    }
}

/// The request that `order` answers (its prices aside).
///
/// # Panics
/// When `order`'s lines are not valid order items (a product twice, too many lines or units).
pub fn request_for(order: &Order) -> OrderRequest {
    let items = order.lines.iter().map(|line| (line.product_id, line.count));
    OrderRequest {
        id: order.id.clone(),
        user_id: order.user_id.clone(),
        items: OrderItems::new(items).expect("an order's lines are valid order items"),
        created_at: order.created_at,
        expires_at: order.expires_at,
    }
}

/// Places the request `order` answers, and on success checks that the store priced it as the
/// scenario expects (lines by product id ascending, at the products' prices, and the total).
pub async fn place<S: Store>(
    store: &Arc<S>,
    order: Order,
    remember: Option<Remember>,
) -> Result<Order, PlaceOrderError> {
    let placed = store.place(request_for(&order), remember).await?;
    let mut expected = order;
    expected.lines.sort_by_key(|line| line.product_id);
    assert_eq!(placed, expected, "the store priced the order as the scenario expects");
    Ok(placed)
}

/// The plan the pay use case would build for `order` at `paid_at`.
pub fn plan(order: &Order, paid_at: DateTime<Utc>) -> PaymentPlan {
    let payment = Payment {
        id: PaymentId::new(format!("pay-{}", order.id)),
        order_id: order.id.clone(),
        user_id: order.user_id.clone(),
        amount: order.total,
        paid_at,
        lines: order.lines.clone(),
    };
    let event = PaymentCompleted {
        event_id: EventId::new(format!("event-{}", order.id)),
        occurred_at: paid_at,
        payment: payment.clone(),
    };
    PaymentPlan { payment, event }
}

pub async fn available<S: Store>(store: &Arc<S>, id: ProductId) -> i64 {
    store.product(id).await.expect("read product").expect("product exists").available.get()
}

pub async fn balance<S: Store>(store: &Arc<S>, user: &UserId) -> i64 {
    store.balance(user.clone()).await.expect("read balance").expect("user exists").get()
}

pub async fn pending_id<S: Store>(
    store: &Arc<S>,
    user: &UserId,
    now: DateTime<Utc>,
) -> Option<String> {
    let order = store.pending(user.clone(), now).await.expect("read pending form");
    order.map(|o| o.id.to_string())
}

pub async fn queued_events<S: Store>(store: &Arc<S>) -> u64 {
    store.backlog().await.expect("read outbox").undelivered
}

/// Pays for one unit of `product` as a new user `name` at `t0() + offset`, and returns the plan.
pub async fn one_payment<S: Store>(
    store: &Arc<S>,
    name: &str,
    product: ProductId,
    offset: TimeDelta,
) -> PaymentPlan {
    let user = user_with(store, name, 100).await;
    let at = t0() + offset;
    let order =
        form(&user, &format!("order-{name}"), &[(product, 1, 10)], at, TimeDelta::seconds(600));
    place(store, order.clone(), None).await.expect("order");
    let the_plan = plan(&order, at);
    store.commit_payment(the_plan.clone(), None).await.expect("payment");
    the_plan
}

pub async fn sold<S: Store>(store: &Arc<S>, id: ProductId) -> i64 {
    let since = t0() - TimeDelta::days(30);
    let ranked = store.top_sellers(since, 1_000).await.expect("read ranking");
    ranked.iter().find(|r| r.product.id == id).map_or(0, |r| r.sold)
}

/// Claims due events and expects the claim, and each event in it, to be readable.
pub async fn claim<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Vec<domain::model::OutboxEntry> {
    let claimed = store.claim_due(now, lease_until, limit).await.expect("claim");
    claimed
        .into_iter()
        .map(|c| c.unwrap_or_else(|unreadable| panic!("an unreadable event: {unreadable:?}")))
        .collect()
}
