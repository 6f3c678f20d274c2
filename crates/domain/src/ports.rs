//! Ports: what the use cases need from the outside world, named for their role. Adapters
//! implement them; the use cases hold them as `Arc<dyn Port>`.
//!
//! Every persistence method is atomic: **on error, no effect is visible**. Checks a use case
//! makes before calling a port are advisory: the decision is the rule (`crate::rules`) the
//! store applies to the rows it holds locked, in the same step as its writes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::errors::{
    AddProductError, ChargeError, EditProductError, PayError, PlaceOrderError, RegisterError,
};
use crate::idempotency::{IdempotencyRecord, Remember};
use crate::model::{
    CatalogPage, ClaimedEvent, FailedAttempt, NewProduct, Order, OrderRequest, OutboxBacklog,
    PaymentCompleted, PaymentPlan, PaymentReceipt, Product, ProductEdit, RankedProduct, User,
};
use crate::values::{EventId, Points, ProductId, UserId};

/// Every persistence role at once: what one storage adapter implements (see
/// [`crate::Stores::from_one`]), and what the contract suite tests.
pub trait Store:
    UserRepository
    + ProductRepository
    + OrderRepository
    + PaymentRepository
    + SalesRanking
    + Outbox
    + IdempotencyStore
    + HealthProbe
{
}

impl<T> Store for T where
    T: UserRepository
        + ProductRepository
        + OrderRepository
        + PaymentRepository
        + SalesRanking
        + Outbox
        + IdempotencyStore
        + HealthProbe
{
}

/// Users and their point balances.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Creates a user with a zero balance.
    ///
    /// # Errors
    /// [`RegisterError::AlreadyRegistered`] if the id is taken; `Unexpected` if the store fails.
    async fn register(&self, id: UserId) -> Result<User, RegisterError>;

    /// Adds `amount` to the balance as one atomic increment and returns the new balance. With
    /// `remember`, stores the outcome under its key in the same step.
    ///
    /// # Errors
    /// [`ChargeError::UnknownUser`], [`ChargeError::Amount`] when the balance would pass
    /// `i64::MAX`, [`ChargeError::Idempotency`] (`AlreadyUsed`) when the key is taken;
    /// `Unexpected` if the store fails. On error the balance is unchanged.
    async fn charge(
        &self,
        id: UserId,
        amount: Points,
        remember: Option<Remember>,
    ) -> Result<Points, ChargeError>;

    /// The current balance, or `None` for an unknown user.
    ///
    /// # Errors
    /// When the store fails.
    async fn balance(&self, id: UserId) -> anyhow::Result<Option<Points>>;
}

/// The catalog: products, their prices and available stock.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ProductRepository: Send + Sync + 'static {
    /// One product with its available stock at this moment, or `None`.
    ///
    /// # Errors
    /// When the store fails.
    async fn product(&self, id: ProductId) -> anyhow::Result<Option<Product>>;

    /// Up to `limit` products by id ascending, skipping `offset`, and the catalog's size.
    ///
    /// # Errors
    /// When the store fails.
    async fn page(&self, offset: u64, limit: u64) -> anyhow::Result<CatalogPage>;

    /// Adds a product; the store assigns the next id.
    ///
    /// # Errors
    /// `Unexpected` if the store fails; then no product was added.
    async fn add(&self, product: NewProduct) -> Result<Product, AddProductError>;

    /// Applies an admin's edit. A restock adds to the available stock.
    ///
    /// # Errors
    /// [`EditProductError::UnknownProduct`]; [`EditProductError::Amount`] when the stock on
    /// hand (available plus reserved) would pass `i64::MAX`. On error nothing changes.
    async fn edit(&self, id: ProductId, edit: ProductEdit) -> Result<Product, EditProductError>;
}

/// Order forms and the stock they reserve.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrderRepository: Send + Sync + 'static {
    /// Decides `request` with [`crate::rules::place_order`] over the rows of this moment (priced at
    /// the products' prices then), stores the form (status pending) and reserves its lines, all or
    /// nothing, and returns the form. The user's previous pending form, if any, is replaced and its
    /// reservation released in the same step, and the stock check counts the units it gives back.
    /// The balance must cover the total at this moment (it is not held; payment debits it). With
    /// `remember`, the outcome is stored under its key in the same step.
    ///
    /// # Errors
    /// In SPEC order: [`PlaceOrderError::UnknownUser`], [`PlaceOrderError::UnknownProduct`]
    /// (the lowest unknown id), [`PlaceOrderError::Amount`] (total overflow),
    /// [`PlaceOrderError::LackOfStock`] (the lowest short id), [`PlaceOrderError::LackOfPoints`];
    /// also [`PlaceOrderError::Idempotency`] (`AlreadyUsed`) and `Unexpected`. On error the
    /// previous form, every stock and every balance are as they were, and no key is stored.
    async fn place(
        &self,
        request: OrderRequest,
        remember: Option<Remember>,
    ) -> Result<Order, PlaceOrderError>;

    /// The user's pending form if it is still payable at `now`.
    ///
    /// # Errors
    /// When the store fails.
    async fn pending(&self, user: UserId, now: DateTime<Utc>) -> anyhow::Result<Option<Order>>;

    /// Expires up to `limit` pending forms whose `expires_at` is at or before `now` and
    /// releases their reservations, each exactly once, and returns how many it expired.
    ///
    /// # Errors
    /// When the store fails; forms already expired stay expired.
    async fn expire_due(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize>;
}

/// Settling order forms into payments.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PaymentRepository: Send + Sync + 'static {
    /// In one atomic step: decides the payment with [`crate::rules::settle_payment`] (the form
    /// `plan.payment.order_id` must still be the user's pending form and payable at
    /// `plan.payment.paid_at`; the balance must cover `plan.payment.amount`), marks the form paid,
    /// turns its reservation into a sale, records the units sold in the hourly sales buckets,
    /// stores the payment, queues `plan.event` in the outbox, and with `remember` stores the
    /// receipt under its key.
    ///
    /// # Errors
    /// [`PayError::NoPendingOrder`] if the form is gone, paid, replaced or expired;
    /// [`PayError::LackOfPoints`]; [`PayError::Idempotency`] (`AlreadyUsed`); `Unexpected`. On
    /// error nothing changes.
    async fn commit_payment(
        &self,
        plan: PaymentPlan,
        remember: Option<Remember>,
    ) -> Result<PaymentReceipt, PayError>;
}

/// Units sold per product, summed over hourly buckets.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SalesRanking: Send + Sync + 'static {
    /// The `size` products with the most units sold in buckets starting at or after `since`,
    /// most first, ties by product id ascending.
    ///
    /// # Errors
    /// When the store fails.
    async fn top_sellers(
        &self,
        since: DateTime<Utc>,
        size: usize,
    ) -> anyhow::Result<Vec<RankedProduct>>;
}

/// Payment events waiting to reach the data platform (written by
/// [`PaymentRepository::commit_payment`]). Events are never dropped: an event stays until it is
/// delivered, however often delivery fails.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` undelivered events that are due at `now` (never tried, or their
    /// retry time has come, or an earlier claim's lease ran out), oldest first, and leases them
    /// until `lease_until`: until then no other relay claims them, so no event is sent by two
    /// relays at the same moment. A relay that dies holding a lease only delays its events.
    /// A claimed row that cannot be read back as an event is returned as an
    /// [`UnreadableEvent`](crate::model::UnreadableEvent) in its place, leased like the rest.
    ///
    /// # Errors
    /// When the store fails; then nothing was claimed.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> anyhow::Result<Vec<ClaimedEvent>>;

    /// Records that these events reached the platform at `at`, in one step; they are never
    /// sent again. Ids already delivered or unknown are ignored.
    ///
    /// # Errors
    /// When the store fails; the events stay undelivered and will be sent again.
    async fn mark_delivered(&self, ids: Vec<EventId>, at: DateTime<Utc>) -> anyhow::Result<()>;

    /// Records failed attempts: for each, one more attempt, the error, and when to try next.
    ///
    /// # Errors
    /// When the store fails; the events are retried when their lease runs out.
    async fn mark_failed(&self, failures: Vec<FailedAttempt>) -> anyhow::Result<()>;

    /// How many events are waiting, how many of them have failed at least once, and when the
    /// oldest of them happened.
    ///
    /// # Errors
    /// When the store fails.
    async fn backlog(&self) -> anyhow::Result<OutboxBacklog>;

    /// Deletes up to `limit` events delivered before `before` and returns how many.
    ///
    /// # Errors
    /// When the store fails.
    async fn purge_delivered(&self, before: DateTime<Utc>, limit: usize) -> anyhow::Result<usize>;
}

/// Stored outcomes of calls made with an `Idempotency-Key` (written by the effect ports).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// The outcome stored under (`user`, `key`), unless it expired before `now`.
    ///
    /// # Errors
    /// When the store fails.
    async fn recall(
        &self,
        user: UserId,
        key: String,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<IdempotencyRecord>>;

    /// Deletes up to `limit` outcomes that expired before `now` and returns how many.
    ///
    /// # Errors
    /// When the store fails.
    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize>;
}

/// Delivers one payment event to the data platform.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync + 'static {
    /// # Errors
    /// When the platform did not confirm receipt; the caller retries later.
    async fn publish(&self, event: PaymentCompleted) -> anyhow::Result<()>;
}

/// Whether the store can serve requests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HealthProbe: Send + Sync + 'static {
    /// # Errors
    /// When the store is unreachable.
    async fn check(&self) -> anyhow::Result<()>;
}

/// The current time. A port so that expiry and ranking windows are testable without sleeping.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Fresh, unique ids for order forms, payments and events.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IdGenerator: Send + Sync + 'static {
    fn new_id(&self) -> String;
}
