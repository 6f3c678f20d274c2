//! The use cases. Each one validates what it can from its typed inputs, reads what it needs,
//! builds a plan with pure arithmetic, and hands the plan to one port method that applies it
//! atomically.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use crate::errors::{
    AddProductError, BalanceError, CatalogError, ChargeError, EditProductError, PayError,
    PendingOrderError, PlaceOrderError, ProductLookupError, RankingError, RegisterError,
};
use crate::idempotency::{
    IdempotencyError, IdempotencyKey, IdempotencyRecord, InFlight, Outcome, Remember, REPLAY_FOR,
};
use crate::model::{
    ranking_window_start, CatalogPage, NewProduct, Order, OrderItems, OrderRequest, OutboxBacklog,
    Payment, PaymentCompleted, PaymentPlan, PaymentReceipt, Product, ProductEdit, RankedProduct,
    User,
};
use crate::ports::{
    Clock, HealthProbe, IdGenerator, IdempotencyStore, OrderRepository, Outbox, PaymentRepository,
    ProductRepository, SalesRanking, Store, UserRepository,
};
use crate::ranking::CachedRanking;
use crate::values::{EventId, OrderId, PaymentId, Points, ProductId, UserId};

mod health;

use health::HealthCache;
pub use health::BACKLOG_FRESHNESS;

/// The largest catalog page; a larger `limit` is treated as this.
pub const MAX_PAGE_SIZE: u64 = 100;

/// What `/health` reports beyond "the store answers".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub outbox: OutboxBacklog,
    pub checked_at: DateTime<Utc>,
}

impl HealthReport {
    /// How long the oldest undelivered payment event has been waiting.
    pub fn oldest_event_age(&self) -> Option<TimeDelta> {
        self.outbox.oldest.map(|oldest| self.checked_at - oldest)
    }
}

/// Business settings (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long an order form waits for payment.
    pub order_ttl: TimeDelta,
    /// The ranking's rolling window, in days.
    pub ranking_days: u32,
    /// How many products the ranking lists.
    pub ranking_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self { order_ttl: TimeDelta::seconds(600), ranking_days: 3, ranking_size: 5 }
    }
}

/// Every persistence port the use cases need. One adapter usually implements all of them, and
/// the same `Arc` is handed in for each role.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserRepository>,
    pub products: Arc<dyn ProductRepository>,
    pub orders: Arc<dyn OrderRepository>,
    pub payments: Arc<dyn PaymentRepository>,
    pub ranking: Arc<dyn SalesRanking>,
    pub outbox: Arc<dyn Outbox>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub health: Arc<dyn HealthProbe>,
}

impl Stores {
    /// Uses one adapter for every role, its ranking read through a [`CachedRanking`] timed by
    /// `clock` (the shop's clock): single flight, answers reused for
    /// [`RANKING_FRESHNESS`](crate::RANKING_FRESHNESS).
    pub fn from_one<S: Store>(store: Arc<S>, clock: Arc<dyn Clock>) -> Self {
        Self {
            users: store.clone(),
            products: store.clone(),
            orders: store.clone(),
            payments: store.clone(),
            ranking: Arc::new(CachedRanking::new(store.clone(), clock)),
            outbox: store.clone(),
            idempotency: store.clone(),
            health: store,
        }
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// The shop: every use case of SPEC §1 and §2.
#[derive(Clone)]
pub struct Mall {
    stores: Stores,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: Settings,
    in_flight: Arc<InFlight>,
    health_cache: Arc<HealthCache>,
}

impl fmt::Debug for Mall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mall").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Mall {
    pub fn new(
        stores: Stores,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: Settings,
    ) -> Self {
        Self {
            stores,
            clock,
            ids,
            settings,
            in_flight: Arc::default(),
            health_cache: Arc::default(),
        }
    }

    /// Registers a user with a zero balance.
    ///
    /// # Errors
    /// [`RegisterError::AlreadyRegistered`] when the id is taken.
    pub async fn register(&self, id: UserId) -> Result<User, RegisterError> {
        self.stores.users.register(id).await
    }

    /// Adds `amount` to a user's balance and returns the new balance.
    ///
    /// # Errors
    /// [`ChargeError::UnknownUser`]; [`ChargeError::Amount`] when the balance would overflow.
    pub async fn charge(
        &self,
        id: UserId,
        amount: Points,
        key: Option<IdempotencyKey>,
    ) -> Result<Points, ChargeError> {
        let replay = |outcome| match outcome {
            Outcome::Charged { balance } => Some(balance),
            _ => None,
        };
        self.with_key(key, replay, |remember| self.stores.users.charge(id, amount, remember)).await
    }

    /// # Errors
    /// [`BalanceError::UnknownUser`].
    pub async fn balance(&self, id: UserId) -> Result<Points, BalanceError> {
        match self.stores.users.balance(id.clone()).await? {
            Some(balance) => Ok(balance),
            None => Err(BalanceError::UnknownUser(id)),
        }
    }

    /// # Errors
    /// [`ProductLookupError::UnknownProduct`].
    pub async fn product(&self, id: ProductId) -> Result<Product, ProductLookupError> {
        self.stores.products.product(id).await?.ok_or(ProductLookupError::UnknownProduct(id))
    }

    /// One catalog page by id ascending; `limit` is capped at [`MAX_PAGE_SIZE`].
    ///
    /// # Errors
    /// `Unexpected` when the store fails.
    pub async fn catalog(&self, offset: u64, limit: u64) -> Result<CatalogPage, CatalogError> {
        Ok(self.stores.products.page(offset, limit.min(MAX_PAGE_SIZE)).await?)
    }

    /// # Errors
    /// `Unexpected` when the store fails.
    pub async fn add_product(&self, product: NewProduct) -> Result<Product, AddProductError> {
        self.stores.products.add(product).await
    }

    /// # Errors
    /// [`EditProductError::UnknownProduct`]; [`EditProductError::Amount`] on stock overflow.
    pub async fn edit_product(
        &self,
        id: ProductId,
        edit: ProductEdit,
    ) -> Result<Product, EditProductError> {
        self.stores.products.edit(id, edit).await
    }

    /// Places an order: the store prices the items at today's prices, reserves the stock and
    /// replaces the user's previous pending form in one step.
    ///
    /// # Errors
    /// In SPEC order: [`PlaceOrderError::UnknownUser`], [`PlaceOrderError::UnknownProduct`],
    /// [`PlaceOrderError::Amount`] (total overflow), [`PlaceOrderError::LackOfStock`],
    /// [`PlaceOrderError::LackOfPoints`].
    pub async fn place_order(
        &self,
        user: UserId,
        items: OrderItems,
        key: Option<IdempotencyKey>,
    ) -> Result<Order, PlaceOrderError> {
        let replay = |outcome| match outcome {
            Outcome::Ordered(order) => Some(order),
            _ => None,
        };
        self.with_key(key, replay, |remember| self.place_order_now(user, items, remember)).await
    }

    async fn place_order_now(
        &self,
        user: UserId,
        items: OrderItems,
        remember: Option<Remember>,
    ) -> Result<Order, PlaceOrderError> {
        // No read first: the store checks the user, prices the items and reserves the stock in
        // one step, so an order costs the store one call.
        let now = self.clock.now();
        let request = OrderRequest {
            id: OrderId::new(self.ids.new_id()),
            user_id: user,
            items,
            created_at: now,
            expires_at: now + self.settings.order_ttl,
        };
        self.stores.orders.place(request, remember).await
    }

    /// The user's order form that is waiting for payment.
    ///
    /// # Errors
    /// [`PendingOrderError::UnknownUser`]; [`PendingOrderError::NoPendingOrder`] when there is
    /// none, or it expired (at `expires_at` exactly, it has).
    pub async fn pending_order(&self, user: UserId) -> Result<Order, PendingOrderError> {
        if self.stores.users.balance(user.clone()).await?.is_none() {
            return Err(PendingOrderError::UnknownUser(user));
        }
        let now = self.clock.now();
        match self.stores.orders.pending(user, now).await? {
            Some(order) if order.is_payable_at(now) => Ok(order),
            _ => Err(PendingOrderError::NoPendingOrder),
        }
    }

    /// Pays the user's pending form. `items` must equal the form's lines.
    ///
    /// # Errors
    /// In SPEC order: [`PayError::UnknownUser`], [`PayError::NoPendingOrder`],
    /// [`PayError::ItemsMismatch`], [`PayError::LackOfPoints`].
    pub async fn pay(
        &self,
        user: UserId,
        items: OrderItems,
        key: Option<IdempotencyKey>,
    ) -> Result<PaymentReceipt, PayError> {
        let replay = |outcome| match outcome {
            Outcome::Paid(receipt) => Some(receipt),
            _ => None,
        };
        self.with_key(key, replay, |remember| self.pay_now(user, items, remember)).await
    }

    async fn pay_now(
        &self,
        user: UserId,
        items: OrderItems,
        remember: Option<Remember>,
    ) -> Result<PaymentReceipt, PayError> {
        // As for orders, the user is looked up only when there is no form to pay.
        let now = self.clock.now();
        let order = match self.stores.orders.pending(user.clone(), now).await? {
            Some(order) if order.is_payable_at(now) => order,
            _ => {
                if self.stores.users.balance(user.clone()).await?.is_none() {
                    return Err(PayError::UnknownUser(user));
                }
                return Err(PayError::NoPendingOrder);
            }
        };
        if !items.matches(&order.lines) {
            return Err(PayError::ItemsMismatch);
        }
        let payment = Payment {
            id: PaymentId::new(self.ids.new_id()),
            order_id: order.id,
            user_id: order.user_id,
            amount: order.total,
            paid_at: now,
            lines: order.lines,
        };
        let event = PaymentCompleted {
            event_id: EventId::new(self.ids.new_id()),
            occurred_at: now,
            payment: payment.clone(),
        };
        self.stores.payments.commit_payment(PaymentPlan { payment, event }, remember).await
    }

    /// The best sellers of the rolling window, best first.
    ///
    /// # Errors
    /// `Unexpected` when the store fails.
    ///
    /// Through [`Stores::from_one`], the ranking port is a [`CachedRanking`]: an answer is
    /// reused for up to [`RANKING_FRESHNESS`](crate::RANKING_FRESHNESS) after its query started
    /// (a payment shows up within that time), and readers that arrive while a query runs wait
    /// for it instead of starting their own.
    pub async fn ranking(&self) -> Result<Vec<RankedProduct>, RankingError> {
        let since = ranking_window_start(self.clock.now(), self.settings.ranking_days);
        Ok(self.stores.ranking.top_sellers(since, self.settings.ranking_size).await?)
    }

    /// Expires up to `limit` forms that are due now and returns how many.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn expire_due_forms(&self, limit: usize) -> anyhow::Result<usize> {
        self.stores.orders.expire_due(self.clock.now(), limit).await
    }

    /// Whether the store answers, and the data-platform backlog.
    ///
    /// # Errors
    /// When the store is unreachable.
    ///
    /// Callers that arrive while a check is in flight share it, and the backlog figures are
    /// reused for up to [`BACKLOG_FRESHNESS`] (see `health`): a burst of reports costs the
    /// store one check per round trip and one backlog query per second.
    pub async fn health(&self) -> anyhow::Result<HealthReport> {
        let (probe, outbox) = (self.stores.health.clone(), self.stores.outbox.clone());
        let outbox = self.health_cache.report(probe, outbox, self.clock.now()).await?;
        Ok(HealthReport { outbox, checked_at: self.clock.now() })
    }
}

impl Mall {
    /// Runs a state-changing call under an optional idempotency key: a key already used
    /// replays its stored outcome (or is refused if the request differs); a key in use by a
    /// running call is refused; otherwise the call runs and its store keeps the outcome.
    async fn with_key<T, E, Run, Fut>(
        &self,
        key: Option<IdempotencyKey>,
        replay: impl Fn(Outcome) -> Option<T>,
        run: Run,
    ) -> Result<T, E>
    where
        Run: FnOnce(Option<Remember>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<IdempotencyError> + From<anyhow::Error>,
    {
        let Some(key) = key else { return run(None).await };
        let _running = self.in_flight.claim(&key)?;
        if let Some(record) = self.recall(&key).await? {
            return replayed(record, &key, &replay);
        }
        let at = self.clock.now();
        let remember = Remember { key: key.clone(), at, expires_at: at + REPLAY_FOR };
        match run(Some(remember)).await {
            Ok(value) => Ok(value),
            // Another instance may have finished a call with this key meanwhile: its outcome
            // wins over whatever this attempt ran into.
            Err(error) => match self.recall(&key).await? {
                Some(record) => replayed(record, &key, &replay),
                None => Err(error),
            },
        }
    }

    async fn recall(&self, key: &IdempotencyKey) -> anyhow::Result<Option<IdempotencyRecord>> {
        let (user, raw) = (key.user().clone(), key.key().to_owned());
        self.stores.idempotency.recall(user, raw, self.clock.now()).await
    }

    /// Deletes up to `limit` stored outcomes past their replay period.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn purge_idempotency_keys(&self, limit: usize) -> anyhow::Result<usize> {
        self.stores.idempotency.purge_expired(self.clock.now(), limit).await
    }
}

fn replayed<T, E: From<IdempotencyError>>(
    record: IdempotencyRecord,
    key: &IdempotencyKey,
    replay: &impl Fn(Outcome) -> Option<T>,
) -> Result<T, E> {
    if record.fingerprint != key.fingerprint() {
        return Err(IdempotencyError::Mismatch.into());
    }
    replay(record.outcome).ok_or_else(|| IdempotencyError::Mismatch.into())
}

#[cfg(test)]
mod tests;
