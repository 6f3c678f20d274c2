//! Order forms, reservations, expiry and payments: the transactions that keep SPEC §1.7.
//!
//! Lock order, everywhere: the user row, then the user's pending form, then product rows by
//! ascending id. The sweeper skips the user (it starts at the forms) but keeps the rest of the
//! order, so no two of these transactions can wait on each other in a cycle.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::anyhow;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use domain::errors::PlaceOrderError;
use domain::idempotency::Remember;
use domain::model::{Order, OrderRequest};
use domain::ports::OrderRepository;
use domain::values::Price;
use domain::values::UserId;

use crate::batch::{Busy, Coalesced, Ctx, Lane, Verdict};
use crate::idempotency;
use crate::locking::{lock_products, lock_products_for, CHUNK};
use crate::rows::{to_db, FormRow, LineRow, NewForm, EXPIRED, PENDING, REPLACED};
use crate::schema::{order_forms, order_lines, users};
use crate::sql_text;
use crate::tx::TxError;
use crate::{Conn, MysqlStore};

/// One form's lines: a statement diesel keeps prepared (an `IN` list is prepared anew each time).
pub(crate) fn lines_of_form(c: &mut Conn, order_id: &str) -> QueryResult<Vec<LineRow>> {
    order_lines::table
        .filter(order_lines::order_id.eq(order_id))
        .order(order_lines::product_id)
        .select(LineRow::as_select())
        .load(c)
}

fn lines_of(c: &mut Conn, order_ids: &[String]) -> QueryResult<Vec<LineRow>> {
    order_lines::table
        .filter(order_lines::order_id.eq_any(order_ids))
        .order((order_lines::order_id, order_lines::product_id))
        .select(LineRow::as_select())
        .load(c)
}

fn units_per_product(lines: &[LineRow]) -> BTreeMap<i64, i64> {
    let mut units = BTreeMap::new();
    for line in lines {
        *units.entry(line.product_id).or_insert(0) += line.count;
    }
    units
}

/// An order waiting for the next batch, with its caller's idempotency key.
#[derive(Debug)]
pub(crate) struct OrderJob {
    request: OrderRequest,
    remember: Option<Remember>,
}

/// Orders are placed in shared transactions (see [`place_batch`]).
pub(crate) fn coalesced() -> Coalesced<OrderJob, Order, PlaceOrderError> {
    Coalesced::new(
        "orders",
        BATCH_LINES,
        |job| job.request.items.len(),
        |job| job.request.user_id.as_str(),
        place_batch,
    )
}

/// Orders per batch are bounded by their lines, so one batch's write text (about 60 bytes a
/// line) stays far below MariaDB's `max_allowed_packet`.
const BATCH_LINES: usize = 4_000;

/// A user's pending form while a batch is worked out: stored before the batch, or placed by
/// the batch's `i`-th order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    Stored(String),
    Placed(usize),
}

/// The units a pending form holds, per product.
#[derive(Debug)]
struct Held {
    form: Form,
    units: BTreeMap<i64, i64>,
}

/// A user, their balance, and one line of their pending form (when they have one).
type AccountRow = (String, i64, Option<String>, Option<NaiveDateTime>, Option<i64>, Option<i64>);

/// A pending form as a batch found it.
#[derive(Debug)]
pub(crate) struct StoredForm {
    pub(crate) id: String,
    pub(crate) expires_at: NaiveDateTime,
    /// Units per product.
    pub(crate) units: BTreeMap<i64, i64>,
}

/// The users a batch touches, locked: their balances and pending forms.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    pub(crate) balances: HashMap<String, i64>,
    pub(crate) forms: HashMap<String, StoredForm>,
}

/// Locks each user, with their pending form and its lines, by ascending user id (one statement
/// per [`CHUNK`] users): the global lock order (a user, then that user's form) holds. Never with
/// `SKIP LOCKED`: a skipped form row would read as "no pending form".
pub(crate) fn lock_accounts<'a>(
    c: &mut Conn,
    users: impl IntoIterator<Item = &'a str>,
) -> QueryResult<Accounts> {
    let user_ids: BTreeSet<&str> = users.into_iter().collect();
    let user_ids: Vec<&str> = user_ids.into_iter().collect();
    let mut accounts = Accounts::default();
    for chunk in user_ids.chunks(CHUNK) {
        let rows: Vec<AccountRow> = users::table
            .left_join(order_forms::table.on(order_forms::pending_user.eq(users::id.nullable())))
            .left_join(order_lines::table.on(order_lines::order_id.eq(order_forms::id)))
            .filter(users::id.eq_any(chunk))
            .order((users::id, order_lines::product_id))
            .select((
                users::id,
                users::balance,
                order_forms::id.nullable(),
                order_forms::expires_at.nullable(),
                order_lines::product_id.nullable(),
                order_lines::count.nullable(),
            ))
            .for_update()
            .load(c)?;
        for (user, balance, form, expires_at, product, count) in rows {
            if let (Some(id), Some(expires_at)) = (form, expires_at) {
                let form = accounts.forms.entry(user.clone()).or_insert_with(|| StoredForm {
                    id,
                    expires_at,
                    units: BTreeMap::new(),
                });
                if let (Some(product), Some(count)) = (product, count) {
                    *form.units.entry(product).or_insert(0) += count;
                }
            }
            accounts.balances.insert(user, balance);
        }
    }
    Ok(accounts)
}

/// What the batch has decided so far, from the rows it locked.
#[derive(Debug, Default)]
struct Plan {
    balances: HashMap<String, i64>,
    /// (available, reserved) per product, as the batch leaves them.
    stock: BTreeMap<i64, (i64, i64)>,
    /// Each product's price, as locked.
    prices: HashMap<i64, Price>,
    held: HashMap<String, Held>,
    /// Stored forms replaced by an order of this batch, with when.
    replaced_stored: Vec<(String, NaiveDateTime)>,
    /// Forms of this batch replaced by a later order of the same batch, with when.
    replaced_placed: HashMap<usize, NaiveDateTime>,
}

impl Plan {
    /// Decides the `i`-th order against the state the earlier orders left, and applies it when
    /// accepted. The checks and their order are SPEC §1.5's: user, products (priced at the
    /// locked rows' prices), stock (the lowest short product id is named), then points. An
    /// order that needs a product row the batch could not lock (`busy`: one of its products,
    /// or one its user's stored form holds) is put off, untouched, as if it came later.
    fn decide(
        &mut self,
        i: usize,
        request: &OrderRequest,
        busy: &BTreeSet<i64>,
    ) -> Verdict<Order, PlaceOrderError> {
        let user = request.user_id.as_str();
        let Some(&balance) = self.balances.get(user) else {
            return Verdict::Done(Err(PlaceOrderError::UnknownUser(request.user_id.clone())));
        };
        if !busy.is_empty() {
            let stored = match self.held.get(user) {
                Some(Held { form: Form::Stored(_), units }) => Some(units),
                _ => None,
            };
            let needed = request.items.product_ids().into_iter().map(|id| id.get());
            let needed = needed.chain(stored.into_iter().flat_map(|units| units.keys().copied()));
            let held: BTreeSet<i64> = needed.filter(|id| busy.contains(id)).collect();
            if !held.is_empty() {
                return Verdict::Deferred(Busy::products(held));
            }
        }
        Verdict::Done(self.place(i, request, balance))
    }

    /// [`Self::decide`] once every row the order needs is locked.
    fn place(
        &mut self,
        i: usize,
        request: &OrderRequest,
        balance: i64,
    ) -> Result<Order, PlaceOrderError> {
        let user = request.user_id.as_str();
        let order = request.priced(|id| self.prices.get(&id.get()).copied())?;
        // The net change per product: the new form's units minus what the old form gives back.
        // The lines name each product once, by id ascending, so the first short one is named.
        let units: BTreeMap<i64, i64> =
            order.lines.iter().map(|l| (l.product_id.get(), l.count.get())).collect();
        let mut delta = units.clone();
        if let Some(old) = self.held.get(user) {
            for (&product, &count) in &old.units {
                *delta.entry(product).or_insert(0) -= count;
            }
        }
        for line in &order.lines {
            let (product, wanted) = (line.product_id.get(), delta[&line.product_id.get()]);
            if wanted > 0
                && self.stock.get(&product).is_some_and(|&(available, _)| available < wanted)
            {
                return Err(PlaceOrderError::LackOfStock(line.product_id));
            }
        }
        if balance < order.total.get() {
            return Err(PlaceOrderError::LackOfPoints);
        }
        for (product, moved) in delta {
            if let Some((available, reserved)) = self.stock.get_mut(&product) {
                *available -= moved;
                *reserved += moved;
            }
        }
        let at = to_db(order.created_at);
        match self.held.insert(user.to_owned(), Held { form: Form::Placed(i), units }) {
            Some(Held { form: Form::Stored(id), .. }) => self.replaced_stored.push((id, at)),
            Some(Held { form: Form::Placed(earlier), .. }) => {
                self.replaced_placed.insert(earlier, at);
            }
            None => {}
        }
        Ok(order)
    }
}

/// Places a batch of orders in one transaction, each with its own outcome, exactly as if they
/// had been placed one after another in queue order. Every row the batch needs is locked up
/// front in the global order (users, their pending forms, products by ascending id), the batch
/// is decided in memory, and each changed row is written once.
///
/// In [`Lane::Skip`] the product rows another transaction holds are skipped, and the orders
/// that need one are put off ([`Verdict::Deferred`]): the others are decided as if those came
/// later. Only when the lock returned fewer rows than asked does a plain read tell the held
/// products from the unknown ones.
fn place_batch(
    c: &mut Conn,
    jobs: &[OrderJob],
    ctx: &Ctx,
) -> Result<Vec<Verdict<Order, PlaceOrderError>>, TxError<anyhow::Error>> {
    let mut outcomes: Vec<Option<Result<Order, PlaceOrderError>>> =
        idempotency::claim_each(c, jobs.iter().map(|j| j.remember.as_ref()), idempotency::ORDERED)?;
    let claimed: Vec<bool> = outcomes.iter().map(Option::is_none).collect();
    let accounts = lock_accounts(c, jobs.iter().map(|j| j.request.user_id.as_str()))?;
    ctx.holds(Busy::users(accounts.balances.keys().map(String::as_str)));
    let mut plan = Plan { balances: accounts.balances, ..Plan::default() };
    let mut old_products = Vec::new();
    for (user, form) in accounts.forms {
        old_products.extend(form.units.keys().copied());
        plan.held.insert(user, Held { form: Form::Stored(form.id), units: form.units });
    }
    let product_ids: BTreeSet<i64> = jobs
        .iter()
        .flat_map(|j| j.request.items.product_ids().into_iter().map(|id| id.get()))
        .chain(old_products)
        .collect();
    let (rows, busy) = lock_products_for(c, ctx, &product_ids)?;
    for (id, price, available, reserved) in rows {
        plan.stock.insert(id, (available, reserved));
        let price =
            Price::new(price).map_err(|e| TxError::Rejected(anyhow!("product {id}: {e}")))?;
        plan.prices.insert(id, price);
    }
    let before = plan.stock.clone();

    let verdicts: Vec<Verdict<Order, PlaceOrderError>> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| match outcomes[i].take() {
            Some(outcome) => Verdict::Done(outcome),
            None => plan.decide(i, &job.request, &busy),
        })
        .collect();
    let accepted: Vec<Option<&Order>> = verdicts
        .iter()
        .map(|verdict| match verdict {
            Verdict::Done(Ok(order)) => Some(order),
            _ => None,
        })
        .collect();
    let placed: Vec<(usize, &Order)> =
        accepted.iter().enumerate().filter_map(|(i, order)| order.map(|o| (i, o))).collect();
    let writes = batch_writes(&plan, &before, &placed);
    // (An empty text must not reach the client library: it crashes on one.)
    if !writes.is_empty() {
        sql_text::execute(c, &writes)?;
    }
    // A key this batch claimed for a refused or put-off order is given back, as a rollback
    // would.
    idempotency::settle_each(
        c,
        jobs.iter().map(|j| j.remember.as_ref()),
        &claimed,
        &accepted,
        |i, _| (None, Some(jobs[i].request.id.as_str()), None),
    )?;
    Ok(verdicts)
}

/// Every write of a batch, as one multi-statement text sent in one round trip: each changed
/// product's final stock (exact: its row is locked), the stored forms that were replaced, the
/// new forms (those replaced within the batch already closed) and their lines. The replaced
/// forms go first, so the new forms never meet the one-pending-form-per-user key.
fn batch_writes(
    plan: &Plan,
    before: &BTreeMap<i64, (i64, i64)>,
    placed: &[(usize, &Order)],
) -> String {
    let mut sql = Vec::new();
    let stock: Vec<(String, Vec<String>)> = plan
        .stock
        .iter()
        .filter(|(id, now)| before.get(id) != Some(now))
        .map(|(id, (available, reserved))| {
            (id.to_string(), vec![available.to_string(), reserved.to_string()])
        })
        .collect();
    if !stock.is_empty() {
        sql.push(sql_text::update_by_id("products", &["available", "reserved"], &stock));
    }
    if !plan.replaced_stored.is_empty() {
        let closed: Vec<(String, Vec<String>)> = plan
            .replaced_stored
            .iter()
            .map(|(id, at)| {
                let values =
                    vec![format!("'{REPLACED}'"), "NULL".to_owned(), sql_text::datetime(*at)];
                (sql_text::text(id), values)
            })
            .collect();
        sql.push(sql_text::update_by_id(
            "order_forms",
            &["status", "pending_user", "closed_at"],
            &closed,
        ));
    }
    if !placed.is_empty() {
        let forms: Vec<String> = placed
            .iter()
            .map(|&(i, order)| {
                let form = match plan.replaced_placed.get(&i) {
                    Some(&at) => NewForm::replaced(order, at),
                    None => NewForm::pending(order),
                };
                format!(
                    "({}, {}, {}, '{}', {}, {}, {}, {})",
                    sql_text::text(form.id),
                    sql_text::text(form.user_id),
                    sql_text::text_or_null(form.pending_user),
                    form.status,
                    form.total,
                    sql_text::datetime(form.created_at),
                    sql_text::datetime(form.expires_at),
                    sql_text::datetime_or_null(form.closed_at),
                )
            })
            .collect();
        sql.push(format!(
            "INSERT INTO order_forms \
             (id, user_id, pending_user, status, total, created_at, expires_at, closed_at) \
             VALUES {}",
            forms.join(",")
        ));
        let lines: Vec<String> = placed
            .iter()
            .flat_map(|(_, order)| {
                let id = sql_text::text(order.id.as_str());
                order.lines.iter().map(move |line| {
                    format!(
                        "({id}, {}, {}, {})",
                        line.product_id.get(),
                        line.count.get(),
                        line.price.get()
                    )
                })
            })
            .collect();
        sql.push(format!(
            "INSERT INTO order_lines (order_id, product_id, count, price) VALUES {}",
            lines.join(",")
        ));
    }
    sql.join(";\n")
}

/// Expires up to `limit` due forms and gives their units back. Neither waits for a row another
/// transaction holds: other sweepers' forms are skipped, and so are the forms holding a product
/// row someone else holds (left for a later sweep, so a held product cannot keep the sweeper —
/// and the due forms it locked — waiting). The status guard is what makes each form expire
/// once.
fn expire_due(c: &mut Conn, now: DateTime<Utc>, limit: usize) -> QueryResult<usize> {
    let now = to_db(now);
    let due: Vec<String> = order_forms::table
        .filter(order_forms::status.eq(PENDING))
        .filter(order_forms::expires_at.le(now))
        .order(order_forms::expires_at.asc())
        .select(order_forms::id)
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .for_update()
        .skip_locked()
        .load(c)?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut lines = lines_of(c, &due)?;
    let products: BTreeSet<i64> = lines.iter().map(|line| line.product_id).collect();
    let locked = lock_products(c, &products, Lane::Skip)?;
    let mut due = due;
    if locked.len() < products.len() {
        let locked: BTreeSet<i64> = locked.iter().map(|row| row.0).collect();
        let waiting: BTreeSet<&str> = lines
            .iter()
            .filter(|line| !locked.contains(&line.product_id))
            .map(|line| line.order_id.as_str())
            .collect();
        let waiting: BTreeSet<String> = waiting.into_iter().map(str::to_owned).collect();
        due.retain(|id| !waiting.contains(id));
        lines.retain(|line| !waiting.contains(&line.order_id));
        if due.is_empty() {
            return Ok(0);
        }
    }
    // The status change and the release go together, as one atomic block (see
    // `galera::atomic_writes`): the due forms are locked, so each of them is expired here.
    let ids: Vec<String> = due.iter().map(|id| sql_text::text(id)).collect();
    let mut writes = vec![format!(
        "UPDATE order_forms SET status = '{EXPIRED}', pending_user = NULL, closed_at = {} \
         WHERE id IN ({}) AND status = '{PENDING}'",
        sql_text::datetime(now),
        ids.join(",")
    )];
    for (product, count) in units_per_product(&lines) {
        writes.push(format!(
            "UPDATE products SET available = available + {count}, reserved = reserved - {count} \
             WHERE id = {product}"
        ));
    }
    sql_text::execute(c, &writes.join(";\n"))?;
    Ok(due.len())
}

#[async_trait]
impl OrderRepository for MysqlStore {
    async fn place(
        &self,
        request: OrderRequest,
        remember: Option<Remember>,
    ) -> Result<Order, PlaceOrderError> {
        self.orders.call(self, OrderJob { request, remember }).await
    }

    async fn pending(&self, user: UserId, now: DateTime<Utc>) -> anyhow::Result<Option<Order>> {
        let found: Option<(FormRow, Vec<LineRow>)> = self
            .blocking(move |c| {
                let form: Option<FormRow> = order_forms::table
                    .filter(order_forms::pending_user.eq(user.as_str()))
                    .filter(order_forms::expires_at.gt(to_db(now)))
                    .select(FormRow::as_select())
                    .first(c)
                    .optional()?;
                match form {
                    Some(form) => {
                        let lines = lines_of_form(c, &form.id)?;
                        Ok::<_, diesel::result::Error>(Some((form, lines)))
                    }
                    None => Ok(None),
                }
            })
            .await??;
        found.map(|(form, lines)| form.into_order(&lines)).transpose()
    }

    async fn expire_due(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
        // Run twice, a sweep expires each form once all the same (the status guard).
        self.transaction_rerun_if_lost("an expiry sweep", move |c| expire_due(c, now, limit))
            .await
            .map_err(|e| e.context("expiring due order forms"))
    }
}
