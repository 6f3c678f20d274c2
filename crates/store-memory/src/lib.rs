//! The in-memory store: every persistence port behind one mutex, with the same promises the
//! MySQL adapter gives. Users and products live in a [`Snapshot`] that the calls fold through
//! `domain::rules` under the lock (a rule changes nothing when it refuses), and the rest is
//! bookkeeping around it: the expiry index, hourly sales, the outbox and stored outcomes. It
//! never awaits or panics while holding the lock, so a failed call changes nothing and
//! concurrent calls behave as if they ran one after another.
//!
//! State lives only as long as the process: this is the demo default and the second
//! implementation of the persistence contract, not a database.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::anyhow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::errors::{
    AddProductError, ChargeError, EditProductError, PayError, PlaceOrderError, RegisterError,
};
use domain::idempotency::{IdempotencyError, IdempotencyRecord, Outcome, Remember};
use domain::model::{
    sales_hour, CatalogPage, ClaimedEvent, FailedAttempt, NewProduct, Order, OrderRequest,
    OutboxBacklog, OutboxEntry, PaymentCompleted, PaymentPlan, PaymentReceipt, Product,
    ProductEdit, RankedProduct, User,
};
use domain::ports::{
    HealthProbe, IdempotencyStore, OrderRepository, Outbox, PaymentRepository, ProductRepository,
    SalesRanking, UserRepository,
};
use domain::rules::{self, Account, Shelf, Snapshot};
use domain::values::{EventId, Points, ProductId, ProductName, Stock, UserId};

/// Every persistence port, in memory. Share it as one `Arc` for all roles
/// (see [`domain::Stores::from_one`]).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Users with their balance and pending form, products with their price and stock.
    shop: Snapshot,
    names: HashMap<ProductId, ProductName>,
    last_product_id: i64,
    /// The pending forms by expiry, so a sweep touches only what is due.
    due: BTreeSet<(DateTime<Utc>, UserId)>,
    /// Units sold per product, per hour (the bucket's start).
    sales: BTreeMap<DateTime<Utc>, HashMap<ProductId, i64>>,
    /// Undelivered events by commit order, and where each one is.
    outbox: BTreeMap<u64, QueuedEvent>,
    outbox_index: HashMap<EventId, u64>,
    next_event_seq: u64,
    /// Delivered events, until the retention purge: only what the purge needs.
    delivered: VecDeque<(DateTime<Utc>, EventId)>,
    /// Outcomes of calls made with an idempotency key, with their expiry.
    idempotency: HashMap<(UserId, String), (IdempotencyRecord, DateTime<Utc>)>,
}

#[derive(Debug)]
struct QueuedEvent {
    seq: u64,
    event: PaymentCompleted,
    attempts: u32,
    /// When it may be claimed next: its time at first, then a lease's end or a retry time.
    due_at: DateTime<Utc>,
    last_error: Option<String>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock would be a bug; the state is still consistent because every
        // method validates before it mutates, so keep serving rather than poisoning every call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The product as callers see it, from its name and shelf.
fn listing(id: ProductId, name: &ProductName, shelf: &Shelf) -> Product {
    Product { id, name: name.clone(), price: shelf.price, available: shelf.available }
}

impl State {
    /// Refuses a key that holds an unexpired outcome (checked before any change).
    fn check_key(&self, remember: Option<&Remember>) -> Result<(), IdempotencyError> {
        let Some(remember) = remember else { return Ok(()) };
        let entry = (remember.key.user().clone(), remember.key.key().to_owned());
        match self.idempotency.get(&entry) {
            Some((_, expires_at)) if *expires_at > remember.at => {
                Err(IdempotencyError::AlreadyUsed)
            }
            _ => Ok(()),
        }
    }

    /// Keeps the outcome under the key, if any; `outcome` is built only then.
    fn remember(&mut self, remember: Option<Remember>, outcome: impl FnOnce() -> Outcome) {
        if let Some(remember) = remember {
            let entry = (remember.key.user().clone(), remember.key.key().to_owned());
            let fingerprint = remember.key.fingerprint().to_owned();
            let record = IdempotencyRecord { fingerprint, outcome: outcome() };
            self.idempotency.insert(entry, (record, remember.expires_at));
        }
    }

    fn product(&self, id: ProductId) -> Option<Product> {
        Some(listing(id, self.names.get(&id)?, self.shop.shelves.get(&id)?))
    }

    fn pending(&self, user: &UserId) -> Option<&Order> {
        self.shop.accounts.get(user)?.pending.as_ref()
    }

    /// Expires the user's pending form: its units go back on the shelf.
    fn expire(&mut self, user: &UserId) -> anyhow::Result<()> {
        let Some(account) = self.shop.accounts.get_mut(user) else { return Ok(()) };
        let Some(form) = account.pending.as_ref() else { return Ok(()) };
        // `release` changes nothing when it fails, so the form stays pending then.
        rules::release(&mut self.shop.shelves, &form.lines)?;
        self.due.remove(&(form.expires_at, user.clone()));
        account.pending = None;
        Ok(())
    }
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn register(&self, id: UserId) -> Result<User, RegisterError> {
        let mut state = self.lock();
        if state.shop.accounts.contains_key(&id) {
            return Err(RegisterError::AlreadyRegistered(id));
        }
        state.shop.accounts.insert(id.clone(), Account { balance: Points::ZERO, pending: None });
        Ok(User { id, balance: Points::ZERO })
    }

    async fn charge(
        &self,
        id: UserId,
        amount: Points,
        remember: Option<Remember>,
    ) -> Result<Points, ChargeError> {
        let mut state = self.lock();
        state.check_key(remember.as_ref())?;
        let balance = rules::charge(&mut state.shop, &id, amount)?;
        state.remember(remember, || Outcome::Charged { balance });
        Ok(balance)
    }

    async fn balance(&self, id: UserId) -> anyhow::Result<Option<Points>> {
        Ok(self.lock().shop.accounts.get(&id).map(|account| account.balance))
    }
}

#[async_trait]
impl ProductRepository for MemoryStore {
    async fn product(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
        Ok(self.lock().product(id))
    }

    async fn page(&self, offset: u64, limit: u64) -> anyhow::Result<CatalogPage> {
        let state = self.lock();
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let shelves = state.shop.shelves.iter().skip(skip).take(take);
        let products = shelves
            .filter_map(|(id, shelf)| Some(listing(*id, state.names.get(id)?, shelf)))
            .collect();
        Ok(CatalogPage { products, total: state.shop.shelves.len() as u64 })
    }

    async fn add(&self, product: NewProduct) -> Result<Product, AddProductError> {
        let mut state = self.lock();
        let next =
            state.last_product_id.checked_add(1).ok_or_else(|| anyhow!("no product ids left"))?;
        let id = ProductId::new(next).map_err(anyhow::Error::from)?;
        let shelf =
            Shelf { price: product.price, available: product.quantity, reserved: Stock::ZERO };
        let added = listing(id, &product.name, &shelf);
        state.shop.shelves.insert(id, shelf);
        state.names.insert(id, product.name);
        state.last_product_id = next;
        Ok(added)
    }

    async fn edit(&self, id: ProductId, edit: ProductEdit) -> Result<Product, EditProductError> {
        let mut state = self.lock();
        let shelf = rules::edit_product(&mut state.shop, id, &edit)?;
        if let Some(name) = edit.name {
            state.names.insert(id, name);
        }
        let name = state.names.get(&id).ok_or_else(|| anyhow!("product {id} has no name"))?;
        Ok(listing(id, name, &shelf))
    }
}

#[async_trait]
impl OrderRepository for MemoryStore {
    async fn place(
        &self,
        request: OrderRequest,
        remember: Option<Remember>,
    ) -> Result<Order, PlaceOrderError> {
        let mut state = self.lock();
        state.check_key(remember.as_ref())?;
        let placed = rules::place_order(&mut state.shop, &request)?;
        if let Some(replaced) = placed.replaced {
            state.due.remove(&(replaced.expires_at, replaced.user_id));
        }
        let order = placed.order;
        state.due.insert((order.expires_at, order.user_id.clone()));
        state.remember(remember, || Outcome::Ordered(order.clone()));
        Ok(order)
    }

    async fn pending(&self, user: UserId, now: DateTime<Utc>) -> anyhow::Result<Option<Order>> {
        Ok(self.lock().pending(&user).filter(|order| order.is_payable_at(now)).cloned())
    }

    async fn expire_due(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
        let mut state = self.lock();
        let due: Vec<UserId> = state
            .due
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .take(limit)
            .map(|(_, user)| user.clone())
            .collect();
        for user in &due {
            state.expire(user)?;
        }
        Ok(due.len())
    }
}

#[async_trait]
impl PaymentRepository for MemoryStore {
    async fn commit_payment(
        &self,
        plan: PaymentPlan,
        remember: Option<Remember>,
    ) -> Result<PaymentReceipt, PayError> {
        let mut state = self.lock();
        state.check_key(remember.as_ref())?;
        let payment = plan.payment;
        let settled = rules::settle_payment(&mut state.shop, &payment)?;
        state.due.remove(&(settled.form.expires_at, payment.user_id.clone()));
        let bucket = state.sales.entry(sales_hour(payment.paid_at)).or_default();
        for line in &settled.form.lines {
            let sold = bucket.entry(line.product_id).or_insert(0);
            *sold = sold.saturating_add(line.count.get());
        }
        let seq = state.next_event_seq;
        state.next_event_seq += 1;
        state.outbox_index.insert(plan.event.event_id.clone(), seq);
        let due_at = plan.event.occurred_at;
        state.outbox.insert(
            seq,
            QueuedEvent { seq, event: plan.event, attempts: 0, due_at, last_error: None },
        );
        let receipt = PaymentReceipt { payment, balance: settled.balance };
        state.remember(remember, || Outcome::Paid(receipt.clone()));
        Ok(receipt)
    }
}

#[async_trait]
impl SalesRanking for MemoryStore {
    async fn top_sellers(
        &self,
        since: DateTime<Utc>,
        size: usize,
    ) -> anyhow::Result<Vec<RankedProduct>> {
        let state = self.lock();
        let mut sold: HashMap<ProductId, i64> = HashMap::new();
        for bucket in state.sales.range(since..).map(|(_, bucket)| bucket) {
            for (product, units) in bucket {
                let total = sold.entry(*product).or_insert(0);
                *total = total.saturating_add(*units);
            }
        }
        let mut ranked: Vec<(ProductId, i64)> = sold.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(ranked
            .into_iter()
            .filter_map(|(id, sold)| {
                state.product(id).map(|product| RankedProduct { product, sold })
            })
            .take(size)
            .collect())
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> anyhow::Result<Vec<ClaimedEvent>> {
        let mut state = self.lock();
        let mut due: Vec<&mut QueuedEvent> =
            state.outbox.values_mut().filter(|queued| queued.due_at <= now).collect();
        due.sort_by_key(|queued| (queued.due_at, queued.seq));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|queued| {
                queued.due_at = lease_until;
                Ok(OutboxEntry { event: queued.event.clone(), attempts: queued.attempts })
            })
            .collect())
    }

    async fn mark_delivered(&self, ids: Vec<EventId>, at: DateTime<Utc>) -> anyhow::Result<()> {
        let mut state = self.lock();
        for id in ids {
            if let Some(seq) = state.outbox_index.remove(&id) {
                state.outbox.remove(&seq);
                state.delivered.push_back((at, id));
            }
        }
        Ok(())
    }

    async fn mark_failed(&self, failures: Vec<FailedAttempt>) -> anyhow::Result<()> {
        let mut state = self.lock();
        for failure in failures {
            let seq = state.outbox_index.get(&failure.event_id).copied();
            if let Some(queued) = seq.and_then(|seq| state.outbox.get_mut(&seq)) {
                queued.attempts = queued.attempts.saturating_add(1);
                queued.due_at = failure.retry_at;
                queued.last_error = Some(failure.error);
            }
        }
        Ok(())
    }

    async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
        let state = self.lock();
        Ok(OutboxBacklog {
            undelivered: state.outbox.len() as u64,
            failing: state.outbox.values().filter(|q| q.attempts > 0).count() as u64,
            oldest: state.outbox.values().map(|q| q.event.occurred_at).min(),
            last_error: state.outbox.values().find_map(|q| q.last_error.clone()),
        })
    }

    async fn purge_delivered(&self, before: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
        let mut state = self.lock();
        let mut purged = 0;
        state.delivered.retain(|(at, _)| {
            let purge = purged < limit && *at < before;
            purged += usize::from(purge);
            !purge
        });
        Ok(purged)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn recall(
        &self,
        user: UserId,
        key: String,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<IdempotencyRecord>> {
        let state = self.lock();
        Ok(state
            .idempotency
            .get(&(user, key))
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(record, _)| record.clone()))
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
        let mut state = self.lock();
        let expired: Vec<(UserId, String)> = state
            .idempotency
            .iter()
            .filter(|(_, (_, expires_at))| *expires_at <= now)
            .take(limit)
            .map(|(entry, _)| entry.clone())
            .collect();
        for entry in &expired {
            state.idempotency.remove(entry);
        }
        Ok(expired.len())
    }
}

#[async_trait]
impl HealthProbe for MemoryStore {
    async fn check(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
