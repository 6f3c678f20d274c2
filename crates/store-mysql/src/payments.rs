//! Payments, coalesced like orders: calls that arrive while a batch is in the database are paid
//! together in the next transaction, each with its own outcome.

use std::collections::BTreeSet;

use async_trait::async_trait;
use domain::errors::PayError;
use domain::idempotency::Remember;
use domain::model::{sales_hour, Payment, PaymentPlan, PaymentReceipt};
use domain::ports::PaymentRepository;
use domain::rules::{self, Settlement, Snapshot};

use crate::batch::{Busy, Coalesced, Ctx, Verdict};
use crate::idempotency::{self, Kind};
use crate::locking::lock_products_for;
use crate::rows::to_db;
use crate::snapshot::{lock_accounts, shelves};
use crate::tx::TxError;
use crate::{sql_text, writes, Conn, MysqlStore};

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

/// The product rows `payment` may sell: those of the form it may settle
/// (`rules::payable_form`), none when it will be refused.
fn payable_products<'a>(shop: &'a Snapshot, payment: &Payment) -> impl Iterator<Item = i64> + 'a {
    let form = rules::payable_form(shop, payment);
    form.into_iter().flat_map(|form| &form.lines).map(|line| line.product_id.get())
}

/// Pays a batch in one transaction, each payment with its own outcome, exactly as if they had
/// been paid one after another in queue order. Users with their pending forms are locked
/// first, then the products of those forms, by ascending id; each payment is decided by
/// `rules::settle_payment` against what the earlier ones left (a form is paid once; a balance
/// is debited in turn), and every write of the fold goes out in one multi-statement round trip
/// (idempotency keys are claimed and settled by statements of their own, `idempotency`).
///
/// In [`Lane::Skip`](crate::batch::Lane::Skip) product rows another transaction holds are
/// skipped, and a payment whose form holds one is put off ([`Verdict::Deferred`]), as if it
/// came later.
fn pay_batch(
    c: &mut Conn,
    jobs: &[PayJob],
    ctx: &Ctx,
) -> Result<Vec<Verdict<PaymentReceipt, PayError>>, TxError<anyhow::Error>> {
    let mut outcomes: Vec<Option<Result<PaymentReceipt, PayError>>> =
        idempotency::claim_each(c, jobs.iter().map(|j| j.remember.as_ref()), Kind::Paid)?;
    let claimed: Vec<bool> = outcomes.iter().map(Option::is_none).collect();
    let accounts = lock_accounts(c, ctx, jobs.iter().map(|j| &j.plan.payment.user_id))?;
    let mut shop = Snapshot { accounts, ..Snapshot::default() };
    let wanted: BTreeSet<i64> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .flat_map(|(job, _)| payable_products(&shop, &job.plan.payment))
        .collect();
    let mut busy = BTreeSet::new();
    if !wanted.is_empty() {
        let (rows, held) = lock_products_for(c, ctx, &wanted)?;
        shop.shelves = shelves(rows).map_err(TxError::Rejected)?;
        busy = held;
    }
    ctx.locked();
    let (balances_before, shelves_before) =
        (writes::balances_of(&shop.accounts), shop.shelves.clone());

    // The settled payments, with their settlements, in queue order.
    let mut settled: Vec<(&PaymentPlan, Settlement)> = Vec::new();
    let verdicts: Vec<Verdict<PaymentReceipt, PayError>> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            if let Some(outcome) = outcomes[i].take() {
                return Verdict::Done(outcome);
            }
            let payment = &job.plan.payment;
            let held: BTreeSet<i64> =
                payable_products(&shop, payment).filter(|id| busy.contains(id)).collect();
            if !held.is_empty() {
                return Verdict::Deferred(Busy::products(held));
            }
            Verdict::Done(rules::settle_payment(&mut shop, payment).map(|settlement| {
                let balance = settlement.balance;
                settled.push((&job.plan, settlement));
                PaymentReceipt { payment: payment.clone(), balance }
            }))
        })
        .collect();

    if !settled.is_empty() {
        let text = writes::payments(
            &shop.accounts,
            &balances_before,
            &shop.shelves,
            &shelves_before,
            &settled,
        );
        sql_text::execute(c, &text)?;
    }
    let accepted: Vec<Option<&PaymentReceipt>> = Verdict::accepted(&verdicts);
    idempotency::settle_each(
        c,
        jobs.iter().map(|j| j.remember.as_ref()),
        &claimed,
        &accepted,
        |i, receipt| (Some(receipt.balance.get()), None, Some(jobs[i].plan.payment.id.as_str())),
    )?;
    Ok(verdicts)
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
