//! Users, balances and the catalog.

use anyhow::anyhow;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::errors::{AddProductError, ChargeError, EditProductError, RegisterError};
use domain::idempotency::Remember;
use domain::model::{CatalogPage, NewProduct, Product, ProductEdit, User};
use domain::ports::{ProductRepository, UserRepository};
use domain::values::{AmountError, Points, ProductId, UserId};

use crate::idempotency;
use crate::rows::ProductRow;
use crate::schema::{products, users};
use crate::tx::{reject, transaction, TxError};
use crate::MysqlStore;

#[async_trait]
impl UserRepository for MysqlStore {
    async fn register(&self, id: UserId) -> Result<User, RegisterError> {
        let key = id.to_string();
        let inserted = self
            .blocking(move |c| {
                diesel::insert_into(users::table)
                    .values((users::id.eq(&key), users::balance.eq(0)))
                    .execute(c)
            })
            .await?;
        match inserted {
            Ok(_) => Ok(User { id, balance: Points::ZERO }),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Err(RegisterError::AlreadyRegistered(id))
            }
            Err(error) => Err(anyhow::Error::new(error).context("registering a user").into()),
        }
    }

    async fn charge(
        &self,
        id: UserId,
        amount: Points,
        remember: Option<Remember>,
    ) -> Result<Points, ChargeError> {
        let balance = self
            .blocking(move |c| {
                transaction(c, |c| {
                    idempotency::claim(c, remember.as_ref(), idempotency::CHARGED)?;
                    let key = id.as_str();
                    // One atomic increment, guarded so the sum never passes i64::MAX.
                    let updated = diesel::update(
                        users::table.find(key).filter(users::balance.le(i64::MAX - amount.get())),
                    )
                    .set(users::balance.eq(users::balance + amount.get()))
                    .execute(c)?;
                    let balance: Option<i64> =
                        users::table.find(key).select(users::balance).first(c).optional()?;
                    match (updated, balance) {
                        (1, Some(balance)) => {
                            idempotency::complete(c, remember.as_ref(), Some(balance), None, None)?;
                            Ok(balance)
                        }
                        (_, None) => reject(ChargeError::UnknownUser(id.clone())),
                        (_, Some(_)) => reject(ChargeError::Amount(AmountError::Overflow)),
                    }
                })
                .map_err(TxError::into_error)
            })
            .await??;
        Ok(Points::new(balance).map_err(anyhow::Error::from)?)
    }

    async fn balance(&self, id: UserId) -> anyhow::Result<Option<Points>> {
        let balance: Option<i64> = self
            .blocking(move |c| {
                users::table.find(id.as_str()).select(users::balance).first(c).optional()
            })
            .await??;
        balance.map(Points::new).transpose().map_err(|e| anyhow!("corrupt balance: {e}"))
    }
}

#[async_trait]
impl ProductRepository for MysqlStore {
    async fn product(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
        let row: Option<ProductRow> = self
            .blocking(move |c| {
                products::table.find(id.get()).select(ProductRow::as_select()).first(c).optional()
            })
            .await??;
        row.map(ProductRow::into_product).transpose()
    }

    async fn products(&self, ids: Vec<ProductId>) -> anyhow::Result<Vec<Product>> {
        let keys: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        let rows: Vec<ProductRow> = self
            .blocking(move |c| {
                products::table
                    .filter(products::id.eq_any(keys))
                    .order(products::id.asc())
                    .select(ProductRow::as_select())
                    .load(c)
            })
            .await??;
        rows.into_iter().map(ProductRow::into_product).collect()
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
