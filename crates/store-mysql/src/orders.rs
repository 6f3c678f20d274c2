//! Order forms: placing them in shared transactions, reading the pending one, expiring them.
//!
//! Lock order, everywhere: the user row, then the user's pending form, then product rows by
//! ascending id. The sweeper skips the user (it starts at the forms) but keeps the rest of the
//! order, so no two of these transactions can wait on each other in a cycle.
//!
//! Where stock is reserved: [`place_batch`] locks and loads the rows (`snapshot`), folds each
//! order through `domain::rules::place_order`, and writes what changed (`writes::orders`).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use domain::errors::PlaceOrderError;
use domain::idempotency::Remember;
use domain::model::{Order, OrderRequest};
use domain::ports::OrderRepository;
use domain::rules::{self, Snapshot};
use domain::values::{OrderId, UserId};

use crate::batch::{Busy, Coalesced, Ctx, Lane, Verdict};
use crate::forms::{lines_of, lines_of_form};
use crate::idempotency::{self, Kind};
use crate::locking::{lock_products, lock_products_for};
use crate::rows::{to_db, FormRow, LineRow, PENDING};
use crate::schema::order_forms;
use crate::snapshot::{lock_accounts, shelves};
use crate::tx::TxError;
use crate::{sql_text, writes, Conn, MysqlStore};

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

/// Of the product rows `request` needs — its own, and those of its user's pending form, which
/// it gives back — the ones another transaction holds (`busy`).
fn held_for(shop: &Snapshot, request: &OrderRequest, busy: &BTreeSet<i64>) -> BTreeSet<i64> {
    if busy.is_empty() {
        return BTreeSet::new();
    }
    let pending = shop.accounts.get(&request.user_id).and_then(|a| a.pending.as_ref());
    let old = pending.into_iter().flat_map(|form| form.lines.iter().map(|l| l.product_id));
    request
        .items
        .product_ids()
        .into_iter()
        .chain(old)
        .map(|id| id.get())
        .filter(|id| busy.contains(id))
        .collect()
}

/// Places a batch of orders in one transaction, each with its own outcome, exactly as if they
/// had been placed one after another in queue order: every row the batch needs is locked up
/// front in the global order (users with their pending forms, then products by ascending id),
/// each order is decided by `rules::place_order` against what the earlier ones left, and each
/// changed row is written once.
///
/// In [`Lane::Skip`] the product rows another transaction holds are skipped, and the orders
/// that need one are put off ([`Verdict::Deferred`]): the others are decided as if those came
/// later.
fn place_batch(
    c: &mut Conn,
    jobs: &[OrderJob],
    ctx: &Ctx,
) -> Result<Vec<Verdict<Order, PlaceOrderError>>, TxError<anyhow::Error>> {
    let mut outcomes: Vec<Option<Result<Order, PlaceOrderError>>> =
        idempotency::claim_each(c, jobs.iter().map(|j| j.remember.as_ref()), Kind::Ordered)?;
    let claimed: Vec<bool> = outcomes.iter().map(Option::is_none).collect();
    let accounts = lock_accounts(c, ctx, jobs.iter().map(|j| &j.request.user_id))?;
    let old_products = accounts.values().flat_map(|a| &a.pending).flat_map(|f| &f.lines);
    let product_ids: BTreeSet<i64> = jobs
        .iter()
        .flat_map(|j| j.request.items.product_ids())
        .chain(old_products.map(|line| line.product_id))
        .map(|id| id.get())
        .collect();
    let (rows, busy) = lock_products_for(c, ctx, &product_ids)?;
    ctx.locked();
    let mut shop = Snapshot { accounts, shelves: shelves(rows).map_err(TxError::Rejected)? };
    let before = shop.shelves.clone();

    // Forms placed by this batch (by id: which order placed them), and the forms replaced, with
    // when: stored before the batch, or placed by an earlier order of it.
    let mut placed_by: HashMap<OrderId, usize> = HashMap::new();
    let mut replaced_stored: Vec<(OrderId, DateTime<Utc>)> = Vec::new();
    let mut replaced_placed: HashMap<usize, DateTime<Utc>> = HashMap::new();
    let verdicts: Vec<Verdict<Order, PlaceOrderError>> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            if let Some(outcome) = outcomes[i].take() {
                return Verdict::Done(outcome);
            }
            let held = held_for(&shop, &job.request, &busy);
            if !held.is_empty() {
                return Verdict::Deferred(Busy::products(held));
            }
            let placed = rules::place_order(&mut shop, &job.request).map(|placement| {
                let at = placement.order.created_at;
                if let Some(old) = placement.replaced {
                    match placed_by.get(&old.id) {
                        Some(&earlier) => {
                            replaced_placed.insert(earlier, at);
                        }
                        None => replaced_stored.push((old.id, at)),
                    }
                }
                placed_by.insert(placement.order.id.clone(), i);
                placement.order
            });
            Verdict::Done(placed)
        })
        .collect();
    let accepted: Vec<Option<&Order>> = Verdict::accepted(&verdicts);
    let placed: Vec<(&Order, Option<DateTime<Utc>>)> = accepted
        .iter()
        .enumerate()
        .filter_map(|(i, order)| order.map(|o| (o, replaced_placed.get(&i).copied())))
        .collect();
    let text = writes::orders(&shop.shelves, &before, &replaced_stored, &placed);
    // (An empty text must not reach the client library: it crashes on one.)
    if !text.is_empty() {
        sql_text::execute(c, &text)?;
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

/// Expires up to `limit` due forms and gives their units back (`rules::release`). Neither waits
/// for a row another transaction holds: other sweepers' forms are skipped, and so are the forms
/// holding a product row someone else holds (left for a later sweep, so a held product cannot
/// keep the sweeper — and the due forms it locked — waiting). Each form expires once: the due
/// forms are read with their locks, `status = 'pending'`, in the transaction that expires them,
/// so a sweep run again (or another sweeper) no longer finds those already expired; the status
/// guard of the update is a second check.
fn expire_due(
    c: &mut Conn,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<usize, TxError<anyhow::Error>> {
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
    let lines = lines_of(c, &due)?;
    let products: BTreeSet<i64> = lines.iter().map(|line| line.product_id).collect();
    let mut shelves =
        shelves(lock_products(c, &products, Lane::Skip)?).map_err(TxError::Rejected)?;
    let before = shelves.clone();
    let locked: BTreeSet<i64> = shelves.keys().map(|id| id.get()).collect();
    let mut lines_by_form: HashMap<&str, Vec<&LineRow>> = HashMap::new();
    for line in &lines {
        lines_by_form.entry(line.order_id.as_str()).or_default().push(line);
    }
    let mut expired = Vec::new();
    for id in due {
        let form = lines_by_form.remove(id.as_str()).unwrap_or_default();
        // A form holding a product row someone else holds waits for a later sweep.
        if form.iter().any(|line| !locked.contains(&line.product_id)) {
            continue;
        }
        let form = form.into_iter().map(LineRow::to_line).collect::<anyhow::Result<Vec<_>>>();
        match form.and_then(|form| rules::release(&mut shelves, &form)) {
            Ok(()) => expired.push(id),
            Err(error) => {
                tracing::warn!(
                    form = id,
                    error = format!("{error:#}"),
                    "an expired form cannot be released"
                );
            }
        }
    }
    if expired.is_empty() {
        return Ok(0);
    }
    // The status change and the release go together, as one atomic block (see
    // `galera::atomic_writes`): the due forms are locked, so each of them is expired here.
    sql_text::execute(c, &writes::expiry(&expired, now, &shelves, &before))?;
    Ok(expired.len())
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
        // Run twice, a sweep expires each form once all the same (it reads only pending forms).
        self.transaction_rerun_if_lost("an expiry sweep", move |c| expire_due(c, now, limit))
            .await
            .map_err(|e| e.context("expiring due order forms"))
    }
}
