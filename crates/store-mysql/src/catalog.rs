//! Users, balances and the catalog.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::anyhow;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::errors::{AddProductError, ChargeError, EditProductError, RegisterError};
use domain::idempotency::Remember;
use domain::model::{CatalogPage, NewProduct, Product, ProductEdit, User};
use domain::ports::{ProductRepository, UserRepository};
use domain::values::{AmountError, Points, ProductId, UserId};

use crate::batch::{Busy, Coalesced, Ctx, Verdict};
use crate::idempotency;
use crate::locking::lock_users_for;
use crate::rows::ProductRow;
use crate::schema::{products, users};
use crate::sql_text;
use crate::tx::{reject, transaction, TxError};
use crate::{Conn, MysqlStore};

/// A charge waiting for the next batch, with its caller's idempotency key.
#[derive(Debug)]
pub(crate) struct ChargeJob {
    user: UserId,
    amount: Points,
    remember: Option<Remember>,
}

/// Charges are applied in shared transactions (see [`charge_batch`]).
pub(crate) fn coalesced() -> Coalesced<ChargeJob, Points, ChargeError> {
    Coalesced::new("charges", 1_000, |_| 1, |job| job.user.as_str(), charge_batch)
}

/// Applies a batch of charges in one transaction, each with its own outcome, exactly as if
/// they had run one after another in queue order: the users' rows are locked (by ascending id),
/// each charge is checked against the balance the earlier ones left, and each changed balance
/// is written once. In [`Lane::Skip`] a user row another transaction holds is skipped and the
/// charges to that user are put off ([`Verdict::Deferred`]).
fn charge_batch(
    c: &mut Conn,
    jobs: &[ChargeJob],
    ctx: &Ctx,
) -> Result<Vec<Verdict<Points, ChargeError>>, TxError<anyhow::Error>> {
    let mut outcomes: Vec<Option<Result<Points, ChargeError>>> =
        idempotency::claim_each(c, jobs.iter().map(|j| j.remember.as_ref()), idempotency::CHARGED)?;
    let claimed: Vec<bool> = outcomes.iter().map(Option::is_none).collect();
    let ids: BTreeSet<&str> = jobs.iter().map(|j| j.user.as_str()).collect();
    let (rows, busy) = lock_users_for(c, ctx, &ids)?;
    let before: BTreeMap<String, i64> = rows.into_iter().collect();
    let mut balances = before.clone();
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
            Verdict::Done(match balances.get_mut(job.user.as_str()) {
                None => Err(ChargeError::UnknownUser(job.user.clone())),
                Some(balance) => match balance.checked_add(job.amount.get()) {
                    None => Err(ChargeError::Amount(AmountError::Overflow)),
                    Some(after) => {
                        *balance = after;
                        Points::new(after).map_err(|e| ChargeError::Unexpected(e.into()))
                    }
                },
            })
        })
        .collect();

    let changed: Vec<(&String, i64)> = balances
        .iter()
        .filter(|(id, balance)| before.get(*id) != Some(balance))
        .map(|(id, &balance)| (id, balance))
        .collect();
    if !changed.is_empty() {
        let rows: Vec<(String, Vec<String>)> = changed
            .iter()
            .map(|(id, balance)| (sql_text::text(id), vec![balance.to_string()]))
            .collect();
        sql_text::execute(c, &sql_text::update_by_id("users", &["balance"], &rows))?;
    }
    let accepted: Vec<Option<&Points>> = verdicts
        .iter()
        .map(|verdict| match verdict {
            Verdict::Done(Ok(balance)) => Some(balance),
            _ => None,
        })
        .collect();
    idempotency::settle_each(
        c,
        jobs.iter().map(|j| j.remember.as_ref()),
        &claimed,
        &accepted,
        |_, balance| (Some(balance.get()), None, None),
    )?;
    Ok(verdicts)
}

#[async_trait]
impl UserRepository for MysqlStore {
    async fn register(&self, id: UserId) -> Result<User, RegisterError> {
        let key = id.to_string();
        let inserted = self
            .blocking(move |c| {
                // Retried on a deadlock: on Galera, the same id registered through another
                // node at once fails this insert's certification (and then meets its key).
                transaction::<_, anyhow::Error>(c, |c| {
                    Ok(diesel::insert_into(users::table)
                        .values((users::id.eq(&key), users::balance.eq(0)))
                        .execute(c)?)
                })
            })
            .await?;
        match inserted {
            Ok(_) => Ok(User { id, balance: Points::ZERO }),
            Err(TxError::Db(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))) => {
                Err(RegisterError::AlreadyRegistered(id))
            }
            Err(error) => Err(error.into_error().context("registering a user").into()),
        }
    }

    async fn charge(
        &self,
        id: UserId,
        amount: Points,
        remember: Option<Remember>,
    ) -> Result<Points, ChargeError> {
        self.charges.call(self, ChargeJob { user: id, amount, remember }).await
    }

    async fn balance(&self, id: UserId) -> anyhow::Result<Option<Points>> {
        let balance = self.point_reads.balances.read(self, id.as_str().to_owned()).await?;
        balance.map(Points::new).transpose().map_err(|e| anyhow!("corrupt balance: {e}"))
    }
}

#[async_trait]
impl ProductRepository for MysqlStore {
    async fn product(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
        let row = self.point_reads.products.read(self, id.get()).await?;
        row.map(|row| crate::point_reads::product_row(row).into_product()).transpose()
    }

    async fn page(&self, offset: u64, limit: u64) -> anyhow::Result<CatalogPage> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (rows, total): (Vec<ProductRow>, i64) = self
            .blocking(move |c| {
                c.transaction(|c| {
                    let rows = products::table
                        .order(products::id.asc())
                        .offset(offset)
                        .limit(limit)
                        .select(ProductRow::as_select())
                        .load(c)?;
                    let total = products::table.count().get_result(c)?;
                    Ok::<_, DieselError>((rows, total))
                })
            })
            .await??;
        Ok(CatalogPage {
            products: rows
                .into_iter()
                .map(ProductRow::into_product)
                .collect::<anyhow::Result<_>>()?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn add(&self, product: NewProduct) -> Result<Product, AddProductError> {
        let row: ProductRow = self
            .blocking(move |c| {
                c.transaction(|c| {
                    diesel::insert_into(products::table)
                        .values((
                            products::name.eq(product.name.as_str()),
                            products::price.eq(product.price.get()),
                            products::available.eq(product.quantity.get()),
                            products::reserved.eq(0),
                        ))
                        .execute(c)?;
                    // MySQL has no RETURNING: the id comes from this connection's last insert.
                    let id: u64 = diesel::select(diesel::dsl::sql::<
                        diesel::sql_types::Unsigned<diesel::sql_types::BigInt>,
                    >("LAST_INSERT_ID()"))
                    .get_result(c)?;
                    let id = i64::try_from(id).map_err(|_| DieselError::NotFound)?;
                    products::table.find(id).select(ProductRow::as_select()).first(c)
                })
            })
            .await?
            .map_err(|e| anyhow::Error::new(e).context("adding a product"))?;
        Ok(row.into_product()?)
    }

    async fn edit(&self, id: ProductId, edit: ProductEdit) -> Result<Product, EditProductError> {
        let row = self
            .blocking(move |c| {
                transaction(c, |c| {
                    let Some(row) = products::table
                        .find(id.get())
                        .select(ProductRow::as_select())
                        .for_update()
                        .first(c)
                        .optional()?
                    else {
                        return reject(EditProductError::UnknownProduct(id));
                    };
                    let available = match edit.restock {
                        Some(units) => {
                            // Reserved units come back on expiry, so the shelf must fit too.
                            let on_shelf = row.available.checked_add(row.reserved);
                            let fits = on_shelf.and_then(|s| s.checked_add(units.get())).is_some();
                            if !fits {
                                return reject(EditProductError::Amount(AmountError::Overflow));
                            }
                            row.available + units.get()
                        }
                        None => row.available,
                    };
                    let name = edit.name.as_ref().map_or(row.name.as_str(), |n| n.as_str());
                    let price = edit.price.map_or(row.price, |p| p.get());
                    diesel::update(products::table.find(id.get()))
                        .set((
                            products::name.eq(name),
                            products::price.eq(price),
                            products::available.eq(available),
                        ))
                        .execute(c)?;
                    Ok(products::table.find(id.get()).select(ProductRow::as_select()).first(c)?)
                })
                .map_err(TxError::into_error)
            })
            .await??;
        Ok(row.into_product()?)
    }
}
