//! The ranking and the health probe.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime};
use domain::model::RankedProduct;
use domain::ports::{HealthProbe, SalesRanking};

use crate::rows::{to_db, ProductRow};
use crate::MysqlStore;

#[derive(Debug, QueryableByName)]
struct RankedRow {
    #[diesel(embed)]
    product: ProductRow,
    #[diesel(sql_type = BigInt)]
    sold: i64,
}

#[async_trait]
impl SalesRanking for MysqlStore {
    async fn top_sellers(
        &self,
        since: DateTime<Utc>,
        size: usize,
    ) -> anyhow::Result<Vec<RankedProduct>> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let rows: Vec<RankedRow> = self
            .blocking(move |c| {
                // A range scan of the (hour, product_id) key: at most 24 × days buckets per
                // product, however many payments there were.
                diesel::sql_query(
                    "SELECT p.id, p.name, p.price, p.available, p.reserved, s.sold \
                     FROM (SELECT product_id, CAST(SUM(units) AS SIGNED) AS sold \
                           FROM sales_hourly WHERE hour >= ? \
                           GROUP BY product_id ORDER BY sold DESC, product_id ASC LIMIT ?) s \
                     JOIN products p ON p.id = s.product_id \
                     ORDER BY s.sold DESC, p.id ASC",
                )
                .bind::<Datetime, _>(to_db(since))
                .bind::<BigInt, _>(size)
                .load(c)
            })
            .await??;
        rows.into_iter()
            .map(|row| Ok(RankedProduct { product: row.product.into_product()?, sold: row.sold }))
            .collect()
    }
}

#[async_trait]
impl HealthProbe for MysqlStore {
    async fn check(&self) -> anyhow::Result<()> {
        self.blocking(|c| diesel::sql_query("SELECT 1").execute(c)).await??;
        Ok(())
    }

    async fn pending_migrations(&self) -> anyhow::Result<usize> {
        use diesel_migrations::MigrationHarness;
        self.blocking(|c| {
            c.pending_migrations(crate::MIGRATIONS)
                .map(|pending| pending.len())
                .map_err(|e| anyhow::anyhow!("reading the applied migrations: {e}"))
        })
        .await?
    }
}
