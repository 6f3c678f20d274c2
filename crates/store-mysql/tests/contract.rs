//! The MySQL/MariaDB store passes the persistence contract, each test on a fresh database.

use std::sync::Arc;
use std::time::Duration;

use store_mysql::testing::fresh_store;
use store_mysql::PoolOptions;

const POOL: PoolOptions = PoolOptions {
    size: 16,
    checkout_timeout: Duration::from_secs(10),
    statement_timeout: Duration::from_secs(10),
};

store_contract::store_contract!(|clock| async move {
    Arc::new(fresh_store(POOL).await.with_clock(clock))
});
