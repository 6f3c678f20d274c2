//! Idempotency keys: claimed first in the call's transaction, completed with the outcome at its
//! end, replayed by reading the order or payment back.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::idempotency::{IdempotencyError, IdempotencyRecord, Outcome, Remember};
use domain::model::{Payment, PaymentReceipt};
use domain::ports::IdempotencyStore;
use domain::values::{OrderId, PaymentId, Points, UserId};

use crate::forms::lines_of_form;
use crate::rows::{from_db, to_db, FormRow, LineRow};
use crate::schema::{idempotency_keys, order_forms, payments};
use crate::{Conn, MysqlStore};

/// What kind of call a key belongs to, as its row's `outcome` column says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Charged,
    Ordered,
    Paid,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Charged => "charged",
            Self::Ordered => "ordered",
            Self::Paid => "paid",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Charged, Self::Ordered, Self::Paid].into_iter().find(|kind| kind.as_str() == raw)
    }
}

/// Takes the key for this transaction; `false` when an unexpired outcome holds it already. A
/// concurrent call with the same key waits here until that call's transaction ends.
fn claim(c: &mut Conn, remember: &Remember, outcome: Kind) -> QueryResult<bool> {
    let (user, key) = (remember.key.user().as_str(), remember.key.key());
    diesel::delete(
        idempotency_keys::table
            .find((user, key))
            .filter(idempotency_keys::expires_at.le(to_db(remember.at))),
    )
    .execute(c)?;
    let inserted = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::user_id.eq(user),
            idempotency_keys::idem_key.eq(key),
            idempotency_keys::fingerprint.eq(remember.key.fingerprint()),
            idempotency_keys::outcome.eq(outcome.as_str()),
            idempotency_keys::created_at.eq(to_db(remember.at)),
            idempotency_keys::expires_at.eq(to_db(remember.expires_at)),
        ))
        .execute(c);
    match inserted {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Claims the key of each call of a batch, in order. A call whose key is taken gets its refusal
/// (`AlreadyUsed`) as its outcome now; the others (`None`) are still to be decided.
pub(crate) fn claim_each<'a, T, E: From<IdempotencyError>>(
    c: &mut Conn,
    keys: impl IntoIterator<Item = Option<&'a Remember>>,
    outcome: Kind,
) -> QueryResult<Vec<Option<Result<T, E>>>> {
    let mut outcomes = Vec::new();
    for remember in keys {
        let taken = match remember {
            Some(remember) => !claim(c, remember, outcome)?,
            None => false,
        };
        outcomes.push(taken.then(|| Err(IdempotencyError::AlreadyUsed.into())));
    }
    Ok(outcomes)
}

/// What a completed key stores: the balance, the order id and the payment id it produced.
pub(crate) type Stored<'a> = (Option<i64>, Option<&'a str>, Option<&'a str>);

/// Ends a batch's keys: an accepted call's key (`accepted[i]` is `Some`) is completed with what
/// `stored` says it produced; the key of a call refused or put off (`None`), if this batch
/// claimed it (`claimed`), is given back, as a rollback of that call alone would.
pub(crate) fn settle_each<'a, 's, T>(
    c: &mut Conn,
    keys: impl IntoIterator<Item = Option<&'a Remember>>,
    claimed: &[bool],
    accepted: &[Option<&T>],
    stored: impl Fn(usize, &T) -> Stored<'s>,
) -> QueryResult<()> {
    let calls = keys.into_iter().zip(claimed).zip(accepted).enumerate();
    for (i, ((remember, &claimed), outcome)) in calls {
        let Some(remember) = remember.filter(|_| claimed) else { continue };
        let row = idempotency_keys::table.find((remember.key.user().as_str(), remember.key.key()));
        match outcome {
            Some(value) => {
                let (balance, order_id, payment_id) = stored(i, value);
                diesel::update(row)
                    .set((
                        idempotency_keys::balance.eq(balance),
                        idempotency_keys::order_id.eq(order_id),
                        idempotency_keys::payment_id.eq(payment_id),
                    ))
                    .execute(c)?;
            }
            None => {
                diesel::delete(row).execute(c)?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Queryable)]
struct KeyRow {
    fingerprint: String,
    outcome: String,
    balance: Option<i64>,
    order_id: Option<String>,
    payment_id: Option<String>,
}

#[derive(Debug, Queryable)]
struct PaymentRow {
    id: String,
    order_id: String,
    user_id: String,
    amount: i64,
    paid_at: NaiveDateTime,
}

fn recall(
    c: &mut Conn,
    user: &UserId,
    key: &str,
    now: NaiveDateTime,
) -> anyhow::Result<Option<IdempotencyRecord>> {
    let row: Option<KeyRow> = idempotency_keys::table
        .find((user.as_str(), key))
        .filter(idempotency_keys::expires_at.gt(now))
        .select((
            idempotency_keys::fingerprint,
            idempotency_keys::outcome,
            idempotency_keys::balance,
            idempotency_keys::order_id,
            idempotency_keys::payment_id,
        ))
        .first(c)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let missing = || anyhow::anyhow!("idempotency key {key} of {user} has an incomplete outcome");
    let outcome = match Kind::parse(&row.outcome) {
        Some(Kind::Charged) => {
            Outcome::Charged { balance: Points::new(row.balance.ok_or_else(missing)?)? }
        }
        Some(Kind::Ordered) => {
            let id = row.order_id.ok_or_else(missing)?;
            let form: FormRow =
                order_forms::table.find(&id).select(FormRow::as_select()).first(c)?;
            Outcome::Ordered(form.into_order(&lines_of_form(c, &id)?)?)
        }
        Some(Kind::Paid) => {
            let id = row.payment_id.ok_or_else(missing)?;
            let p: PaymentRow = payments::table
                .find(&id)
                .select((
                    payments::id,
                    payments::order_id,
                    payments::user_id,
                    payments::amount,
                    payments::paid_at,
                ))
                .first(c)?;
            let lines = lines_of_form(c, &p.order_id)?;
            let payment = Payment {
                id: PaymentId::new(p.id),
                order_id: OrderId::new(p.order_id),
                user_id: UserId::parse(&p.user_id)?,
                amount: Points::new(p.amount)?,
                paid_at: from_db(p.paid_at),
                lines: lines.iter().map(LineRow::to_line).collect::<anyhow::Result<_>>()?,
            };
            let balance = Points::new(row.balance.ok_or_else(missing)?)?;
            Outcome::Paid(PaymentReceipt { payment, balance })
        }
        None => anyhow::bail!("unknown idempotency outcome {:?}", row.outcome),
    };
    Ok(Some(IdempotencyRecord { fingerprint: row.fingerprint, outcome }))
}

#[async_trait]
impl IdempotencyStore for MysqlStore {
    async fn recall(
        &self,
        user: UserId,
        key: String,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<IdempotencyRecord>> {
        self.blocking(move |c| recall(c, &user, &key, to_db(now))).await?
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let now = to_db(now);
        let purged = self
            .blocking(move |c| {
                // Retried on a deadlock: on Galera, a key taken through another node meanwhile
                // fails this delete's certification.
                crate::tx::transaction::<_, anyhow::Error>(c, |c| {
                    Ok(diesel::sql_query(
                        "DELETE FROM idempotency_keys WHERE expires_at <= ? LIMIT ?",
                    )
                    .bind::<diesel::sql_types::Datetime, _>(now)
                    .bind::<diesel::sql_types::BigInt, _>(limit)
                    .execute(c)?)
                })
                .map_err(crate::tx::TxError::into_error)
            })
            .await??;
        Ok(purged)
    }
}
