//! Charges, coalesced like orders: calls that arrive while a batch is in the database are
//! applied together in the next transaction, each with its own outcome.

use std::collections::BTreeSet;

use domain::errors::ChargeError;
use domain::idempotency::Remember;
use domain::rules::{self, Snapshot};
use domain::values::{Points, UserId};

use crate::batch::{Busy, Coalesced, Ctx, Verdict};
use crate::idempotency::{self, Kind};
use crate::locking::lock_users_for;
use crate::snapshot::balances;
use crate::tx::TxError;
use crate::{sql_text, writes, Conn};

/// A charge waiting for the next batch, with its caller's idempotency key.
#[derive(Debug)]
pub(crate) struct ChargeJob {
    pub(crate) user: UserId,
    pub(crate) amount: Points,
    pub(crate) remember: Option<Remember>,
}

/// Charges are applied in shared transactions (see [`charge_batch`]).
pub(crate) fn coalesced() -> Coalesced<ChargeJob, Points, ChargeError> {
    Coalesced::new("charges", 1_000, |_| 1, |job| job.user.as_str(), charge_batch)
}

/// Applies a batch of charges in one transaction, each with its own outcome, exactly as if
/// they had run one after another in queue order: the users' rows are locked (by ascending id),
/// each charge is decided by `rules::charge` against the balance the earlier ones left, and
/// each changed balance is written once. In [`Lane::Skip`](crate::batch::Lane::Skip) a user row
/// another transaction holds is skipped and the charges to that user are put off
/// ([`Verdict::Deferred`]).
fn charge_batch(
    c: &mut Conn,
    jobs: &[ChargeJob],
    ctx: &Ctx,
) -> Result<Vec<Verdict<Points, ChargeError>>, TxError<anyhow::Error>> {
    let mut outcomes: Vec<Option<Result<Points, ChargeError>>> =
        idempotency::claim_each(c, jobs.iter().map(|j| j.remember.as_ref()), Kind::Charged)?;
    let claimed: Vec<bool> = outcomes.iter().map(Option::is_none).collect();
    let ids: BTreeSet<&str> = jobs.iter().map(|j| j.user.as_str()).collect();
    let (rows, busy) = lock_users_for(c, ctx, &ids)?;
    ctx.locked();
    let accounts = balances(rows).map_err(TxError::Rejected)?;
    let mut shop = Snapshot { accounts, ..Snapshot::default() };
    let before = writes::balances_of(&shop.accounts);
    let verdicts: Vec<Verdict<Points, ChargeError>> = jobs
        .iter()
        .zip(outcomes.iter_mut())
        .map(|(job, outcome)| {
            if let Some(outcome) = outcome.take() {
                return Verdict::Done(outcome);
            }
            if busy.contains(job.user.as_str()) {
                return Verdict::Deferred(Busy::user(job.user.as_str()));
            }
            Verdict::Done(rules::charge(&mut shop, &job.user, job.amount))
        })
        .collect();
    if let Some(text) = writes::balances(&shop.accounts, &before) {
        sql_text::execute(c, &text)?;
    }
    let accepted: Vec<Option<&Points>> = Verdict::accepted(&verdicts);
    idempotency::settle_each(
        c,
        jobs.iter().map(|j| j.remember.as_ref()),
        &claimed,
        &accepted,
        |_, balance| (Some(balance.get()), None, None),
    )?;
    Ok(verdicts)
}
