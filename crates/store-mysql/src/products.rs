//! The catalog: reading products and pages, adding products, editing them (price, name,
//! restock through `domain::rules::edit_product`).

use std::collections::BTreeSet;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use domain::errors::{AddProductError, EditProductError};
use domain::model::{CatalogPage, NewProduct, Product, ProductEdit};
use domain::ports::ProductRepository;
use domain::rules::{self, Snapshot};
use domain::values::ProductId;

use crate::batch::Lane;
use crate::locking::lock_products;
use crate::rows::ProductRow;
use crate::schema::products;
use crate::snapshot::shelves;
use crate::tx::{reject, transaction, TxError};
use crate::MysqlStore;

#[async_trait]
impl ProductRepository for MysqlStore {
    async fn product(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
        let row = self.point_reads.products.read(self, id.get()).await?;
        row.map(ProductRow::into_product).transpose()
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
                    let rows = lock_products(c, &BTreeSet::from([id.get()]), Lane::Wait)?;
                    let shelves = shelves(rows).map_err(|e| TxError::Rejected(e.into()))?;
                    let mut shop = Snapshot { shelves, ..Snapshot::default() };
                    let shelf = match rules::edit_product(&mut shop, id, &edit) {
                        Ok(shelf) => shelf,
                        Err(refused) => return reject(refused),
                    };
                    let target = products::table.find(id.get());
                    match &edit.name {
                        Some(name) => diesel::update(target)
                            .set((
                                products::name.eq(name.as_str()),
                                products::price.eq(shelf.price.get()),
                                products::available.eq(shelf.available.get()),
                            ))
                            .execute(c)?,
                        None => diesel::update(target)
                            .set((
                                products::price.eq(shelf.price.get()),
                                products::available.eq(shelf.available.get()),
                            ))
                            .execute(c)?,
                    };
                    Ok(products::table.find(id.get()).select(ProductRow::as_select()).first(c)?)
                })
                .map_err(TxError::into_error)
            })
            .await??;
        Ok(row.into_product()?)
    }
}
