//! Payments, coalesced like orders: calls that arrive while a batch is in the database are paid
//! together in the next transaction, each with its own outcome.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::anyhow;
use async_trait::async_trait;
use chrono::NaiveDateTime;
use domain::errors::PayError;
use domain::idempotency::Remember;
use domain::model::{sales_hour, PaymentPlan, PaymentReceipt};
use domain::ports::PaymentRepository;
use domain::values::Points;

use crate::batch::{Busy, Coalesced, Ctx, Verdict};
use crate::idempotency;
use crate::locking::lock_products_for;
use crate::orders::{lock_accounts, Accounts};
use crate::rows::{to_db, PAID};
use crate::sql_text::{self, datetime, text};
use crate::tx::TxError;
use crate::{Conn, MysqlStore};

/// A payment waiting for the next batch, with its caller's idempotency key.
#[derive(Debug)]
pub(crate) struct PayJob {
    plan: PaymentPlan,
    remember: Option<Remember>,
}

/// Payments are committed in shared transactions (see [`pay_batch`]).
pub(crate) fn coalesced() -> Coalesced<PayJob, PaymentReceipt, PayError> {
    Coalesced::new("payments", 1_000, |_| 1, |job| job.plan.payment.user_id.as_str(), pay_batch)
}

/// A payment the batch accepted: the form it settles, the units it sells, the balance after.
#[derive(Debug)]
struct Settled {
    job: usize,
    units: BTreeMap<i64, i64>,
    balance: i64,
}

/// Pays a batch in one transaction, each payment with its own outcome, exactly as if they had
/// been paid one after another in queue order. Users with their pending forms are locked
/// first, then the products of the forms the payments name, by ascending id; each payment is
/// checked against what the earlier ones left (a form is paid once; a balance is debited in
/// turn), and every write goes out in one multi-statement round trip.
///
/// In [`Lane::Skip`] product rows another transaction holds are skipped, and a payment that
/// would settle a form holding one is put off ([`Verdict::Deferred`]), as if it came later.
fn pay_batch(
    c: &mut Conn,
    jobs: &[PayJob],
    ctx: &Ctx,
) -> Result<Vec<Verdict<PaymentReceipt, PayError>>, TxError<anyhow::Error>> {
    let mut outcomes: Vec<Option<Result<i64, PayError>>> =
        idempotency::claim_each(c, jobs.iter().map(|j| j.remember.as_ref()), idempotency::PAID)?;
    let claimed: Vec<bool> = outcomes.iter().map(Option::is_none).collect();
    let mut accounts = lock_accounts(c, jobs.iter().map(|j| j.plan.payment.user_id.as_str()))?;
    ctx.holds(Busy::users(accounts.balances.keys().map(String::as_str)));

    // The products of every form a payment of the batch may settle: the payer's pending form,
    // when it is the one named and still payable.
    let payable = |accounts: &Accounts, job: &PayJob| -> Option<BTreeSet<i64>> {
        let payment = &job.plan.payment;
        let form = accounts.forms.get(payment.user_id.as_str())?;
        (form.id == payment.order_id.as_str() && to_db(payment.paid_at) < form.expires_at)
            .then(|| form.units.keys().copied().collect())
    };
    let wanted: BTreeSet<i64> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .filter_map(|(job, _)| payable(&accounts, job))
        .flatten()
        .collect();
    let mut reserved: BTreeMap<i64, i64> = BTreeMap::new();
    let mut busy = BTreeSet::new();
    if !wanted.is_empty() {
        let (rows, held) = lock_products_for(c, ctx, &wanted)?;
        reserved.extend(rows.into_iter().map(|(id, _, _, reserved)| (id, reserved)));
        busy = held;
    }

    let mut settled = Vec::new();
    let mut deferred: Vec<Option<Busy>> = vec![None; jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
        let payment = &job.plan.payment;
        let user = payment.user_id.as_str();
        let outcome = match payable(&accounts, job) {
            Some(products) if !products.is_disjoint(&busy) => {
                let held = products.intersection(&busy).copied();
                deferred[i] = Some(Busy::products(held));
                continue;
            }
            Some(_) => {
                let balance = accounts.balances.get_mut(user).ok_or_else(|| {
                    TxError::Rejected(anyhow!("user {user} has a form but no row"))
                })?;
                if *balance < payment.amount.get() {
                    Err(PayError::LackOfPoints)
                } else {
                    *balance -= payment.amount.get();
                    let balance = *balance;
                    let units = accounts.forms.remove(user).map(|f| f.units).unwrap_or_default();
                    for (product, units) in &units {
                        let held = reserved.get_mut(product).filter(|held| **held >= *units);
                        let Some(held) = held else {
                            // A broken invariant, not a refusal: the whole batch rolls back.
                            return Err(TxError::Rejected(anyhow!(
                                "product {product} has fewer units reserved than form {} holds",
                                payment.order_id
                            )));
                        };
                        *held -= units;
                    }
                    settled.push(Settled { job: i, units, balance });
                    Ok(balance)
                }
            }
            None => Err(PayError::NoPendingOrder),
        };
        outcomes[i] = Some(outcome);
    }

    if !settled.is_empty() {
        let sold: BTreeSet<i64> = settled.iter().flat_map(|s| s.units.keys().copied()).collect();
        reserved.retain(|id, _| sold.contains(id));
        sql_text::execute(c, &writes(jobs, &settled, &reserved))?;
    }

    let accepted: Vec<Option<&i64>> =
        outcomes.iter().map(|outcome| outcome.as_ref().and_then(|o| o.as_ref().ok())).collect();
    idempotency::settle_each(
        c,
        jobs.iter().map(|j| j.remember.as_ref()),
        &claimed,
        &accepted,
        |i, balance| (Some(*balance), None, Some(jobs[i].plan.payment.id.as_str())),
    )?;
    Ok(jobs
        .iter()
        .zip(outcomes)
        .zip(deferred)
        .map(|((job, outcome), deferred)| match (outcome, deferred) {
            (Some(outcome), _) => Verdict::Done(outcome.and_then(|balance| {
                let balance = Points::new(balance).map_err(|e| PayError::Unexpected(e.into()))?;
                Ok(PaymentReceipt { payment: job.plan.payment.clone(), balance })
            })),
            (None, Some(busy)) => Verdict::Deferred(busy),
            (None, None) => Verdict::Done(Err(PayError::Unexpected(anyhow!("undecided payment")))),
        })
        .collect())
}

/// Every write of a batch of payments, as one multi-statement text: the balances debited, the
/// forms settled, the units sold leaving `reserved`, the hourly sales, the payments and their
/// outbox events.
fn writes(jobs: &[PayJob], settled: &[Settled], reserved: &BTreeMap<i64, i64>) -> String {
    let mut balances: HashMap<&str, i64> = HashMap::new();
    let mut sales: BTreeMap<(NaiveDateTime, i64), i64> = BTreeMap::new();
    let mut forms = Vec::new();
    let mut payments = Vec::new();
    let mut events = Vec::new();
    for s in settled {
        let PaymentPlan { payment, event } = &jobs[s.job].plan;
        balances.insert(payment.user_id.as_str(), s.balance);
        let paid_at = to_db(payment.paid_at);
        forms.push((
            text(payment.order_id.as_str()),
            vec![format!("'{PAID}'"), "NULL".to_owned(), datetime(paid_at)],
        ));
        let hour = to_db(sales_hour(payment.paid_at));
        for (&product, &units) in &s.units {
            *sales.entry((hour, product)).or_insert(0) += units;
        }
        payments.push(format!(
            "({}, {}, {}, {}, {})",
            text(payment.id.as_str()),
            text(payment.order_id.as_str()),
            text(payment.user_id.as_str()),
            payment.amount.get(),
            datetime(paid_at)
        ));
        let occurred = datetime(to_db(event.occurred_at));
        events.push(format!(
            "({}, {}, {occurred}, {occurred})",
            text(event.event_id.as_str()),
            text(payment.id.as_str())
        ));
    }
    let balances: Vec<(String, Vec<String>)> = balances
        .into_iter()
        .map(|(user, balance)| (text(user), vec![balance.to_string()]))
        .collect();
    let reserved: Vec<(String, Vec<String>)> =
        reserved.iter().map(|(id, units)| (id.to_string(), vec![units.to_string()])).collect();
    let sales: Vec<String> = sales
        .into_iter()
        .map(|((hour, product), units)| format!("({}, {product}, {units})", datetime(hour)))
        .collect();
    [
        sql_text::update_by_id("users", &["balance"], &balances),
        sql_text::update_by_id("order_forms", &["status", "pending_user", "closed_at"], &forms),
        sql_text::update_by_id("products", &["reserved"], &reserved),
        format!(
            "INSERT INTO sales_hourly (hour, product_id, units) VALUES {} \
             ON DUPLICATE KEY UPDATE units = units + VALUES(units)",
            sales.join(",")
        ),
        format!(
            "INSERT INTO payments (id, order_id, user_id, amount, paid_at) VALUES {}",
            payments.join(",")
        ),
        format!(
            "INSERT INTO outbox_events (event_id, payment_id, occurred_at, next_attempt_at) \
             VALUES {}",
            events.join(",")
        ),
    ]
    .join(";\n")
}

#[async_trait]
impl PaymentRepository for MysqlStore {
    async fn commit_payment(
        &self,
        plan: PaymentPlan,
        remember: Option<Remember>,
    ) -> Result<PaymentReceipt, PayError> {
        let receipt = self.payments.call(self, PayJob { plan, remember }).await?;
        self.closed_hours.paid_in(to_db(sales_hour(receipt.payment.paid_at)));
        Ok(receipt)
    }
}
