//! The health probe, and the migrations the schema still lacks (for `app`'s `/ready`).

use async_trait::async_trait;
use diesel::prelude::*;
use domain::ports::HealthProbe;

use crate::MysqlStore;

#[async_trait]
impl HealthProbe for MysqlStore {
    async fn check(&self) -> anyhow::Result<()> {
        self.blocking(|c| diesel::sql_query("SELECT 1").execute(c)).await??;
        Ok(())
    }
}

impl MysqlStore {
    /// How many of the [`MIGRATIONS`](crate::MIGRATIONS) the database still lacks (`app`'s
    /// `/ready` asks: an instance whose schema is behind it should not get traffic).
    ///
    /// # Errors
    /// When the database is unreachable.
    pub async fn pending_migrations(&self) -> anyhow::Result<usize> {
        use diesel_migrations::MigrationHarness;
        self.blocking(|c| {
            c.pending_migrations(crate::MIGRATIONS)
                .map(|pending| pending.len())
                .map_err(|e| anyhow::anyhow!("reading the applied migrations: {e}"))
        })
        .await?
    }
}
