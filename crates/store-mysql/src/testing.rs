//! Fresh databases for tests: each test gets its own, named `mall_test_…`, so tests run in
//! parallel without seeing each other. `make test` drops the leftovers of earlier runs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};

use crate::{MysqlStore, PoolOptions, StoreOptions};

/// The server tests use: `MALL_TEST_DATABASE_URL`, default `mysql://root@127.0.0.1:3306`.
pub fn server_url() -> String {
    std::env::var("MALL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// Creates an empty database and returns its URL.
///
/// # Panics
/// Loudly, when the server is unreachable: MySQL tests never skip silently.
pub fn fresh_database_url() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = server_url();
    let mut conn = MysqlConnection::establish(&server).unwrap_or_else(|error| {
        panic!(
            "\n\n*** MariaDB is not reachable at {server}: {error}\n\
             *** The MySQL tests need it: run `make db-up` (or start MariaDB yourself), or set\n\
             *** MALL_TEST_DATABASE_URL to a server where root may create databases.\n\n"
        )
    });
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "mall_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    conn.batch_execute(&format!("CREATE DATABASE `{name}`")).expect("create a test database");
    format!("{server}/{name}")
}

/// A migrated store on a fresh database.
///
/// # Panics
/// When MariaDB is unreachable or the migrations fail.
pub async fn fresh_store(options: PoolOptions) -> MysqlStore {
    fresh_store_with_url(options).await.0
}

/// A migrated store on a fresh database, and that database's URL (for a test that also looks
/// at the tables itself).
///
/// # Panics
/// When MariaDB is unreachable or the migrations fail.
pub async fn fresh_store_with_url(options: PoolOptions) -> (MysqlStore, String) {
    fresh_store_with_options(options, StoreOptions::default()).await
}

/// [`fresh_store_with_url`], with the store's own options (group commit off, say).
///
/// # Panics
/// When MariaDB is unreachable or the migrations fail.
pub async fn fresh_store_with_options(
    options: PoolOptions,
    store: StoreOptions,
) -> (MysqlStore, String) {
    tokio::task::spawn_blocking(move || {
        let url = fresh_database_url();
        (MysqlStore::connect_with(&url, options, store).expect("a migrated store"), url)
    })
    .await
    .expect("the setup task")
}

/// The SQL addresses of the Galera cluster's nodes the cluster tests use:
/// `MALL_TEST_GALERA_URLS` (comma-separated), by default the three nodes `make cluster-up`
/// starts (127.0.0.1:3307–3309). `None` when `MALL_TEST_GALERA=off` says to skip them.
///
/// # Panics
/// Loudly, when a node is unreachable or the cluster is not whole: cluster tests never skip
/// silently.
pub fn galera_nodes() -> Option<Vec<String>> {
    if galera_off() {
        return None;
    }
    // Held shared until the test process ends; the node-loss test takes it exclusively.
    static SHARED: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let file = cluster_lock_file();
        file.lock_shared().expect("a shared lock on the cluster tests' lock file");
        file
    });
    Some(checked_galera_nodes())
}

/// Like [`galera_nodes`], for a test that disturbs the cluster (kills a node): waits until no
/// other cluster test runs (they hold the lock shared, per test process under nextest), and
/// keeps the others out while the returned file is held.
///
/// # Panics
/// As [`galera_nodes`].
pub fn galera_exclusive() -> Option<(Vec<String>, std::fs::File)> {
    if galera_off() {
        return None;
    }
    let file = cluster_lock_file();
    file.lock().expect("an exclusive lock on the cluster tests' lock file");
    Some((checked_galera_nodes(), file))
}

fn galera_off() -> bool {
    let off = std::env::var("MALL_TEST_GALERA").is_ok_and(|v| v == "off");
    if off {
        eprintln!("MALL_TEST_GALERA=off: skipping a Galera cluster test");
    }
    off
}

fn cluster_lock_file() -> std::fs::File {
    let path = std::env::temp_dir().join("mall-galera-tests.lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

fn checked_galera_nodes() -> Vec<String> {
    let nodes: Vec<String> = std::env::var("MALL_TEST_GALERA_URLS")
        .unwrap_or_else(|_| {
            "mysql://root@127.0.0.1:3307,mysql://root@127.0.0.1:3308,mysql://root@127.0.0.1:3309"
                .to_owned()
        })
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    for node in &nodes {
        let size = MysqlConnection::establish(node)
            .map_err(|e| e.to_string())
            .and_then(|mut c| crate::galera::cluster_size(&mut c).map_err(|e| e.to_string()));
        match size {
            Ok(Some(size)) if size as usize >= nodes.len() => {}
            other => panic!(
                "\n\n*** The Galera cluster tests need a {}-node cluster at {node}: {other:?}\n\
                 *** Run `make cluster-up` (it starts one on 127.0.0.1:3307-3309), set\n\
                 *** MALL_TEST_GALERA_URLS to your nodes, or MALL_TEST_GALERA=off to skip them.\n\n",
                nodes.len()
            ),
        }
    }
    nodes
}

/// A fresh, empty database on the cluster (created on the first node; DDL replicates), and its
/// URL on each node.
///
/// # Panics
/// When the cluster is unreachable.
pub fn fresh_galera_database(nodes: &[String]) -> Vec<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "mall_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    let mut conn = MysqlConnection::establish(&nodes[0]).expect("connect to the first node");
    conn.batch_execute(&format!("CREATE DATABASE `{name}`")).expect("create a test database");
    nodes.iter().map(|node| format!("{node}/{name}")).collect()
}

/// Migrated stores on a fresh cluster database, one per node, and their URLs.
///
/// # Panics
/// When the cluster is unreachable or the migrations fail.
pub async fn fresh_galera_stores(
    nodes: &[String],
    options: PoolOptions,
) -> (Vec<MysqlStore>, Vec<String>) {
    let nodes = nodes.to_vec();
    tokio::task::spawn_blocking(move || {
        let urls = fresh_galera_database(&nodes);
        let stores = urls
            .iter()
            .map(|url| MysqlStore::connect(url, options).expect("a migrated store"))
            .collect();
        (stores, urls)
    })
    .await
    .expect("the setup task")
}

/// Several stores on one database (on a cluster: one per node) behind one `Store`: each call
/// goes to the next store in turn, as calls behind a load balancer reach instances on
/// different nodes. The contract suite runs through it on the Galera cluster.
#[derive(Debug)]
pub struct Spread {
    stores: Vec<MysqlStore>,
    next: std::sync::atomic::AtomicUsize,
}

impl Spread {
    /// # Panics
    /// When `stores` is empty.
    pub fn new(stores: Vec<MysqlStore>) -> Self {
        assert!(!stores.is_empty(), "at least one store");
        Self { stores, next: std::sync::atomic::AtomicUsize::new(0) }
    }

    fn pick(&self) -> &MysqlStore {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.stores[i % self.stores.len()]
    }
}

mod spread {
    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use domain::errors::{
        AddProductError, ChargeError, EditProductError, PayError, PlaceOrderError, RegisterError,
    };
    use domain::idempotency::{IdempotencyRecord, Remember};
    use domain::model::{
        CatalogPage, ClaimedEvent, FailedAttempt, NewProduct, Order, OrderRequest, OutboxBacklog,
        PaymentPlan, PaymentReceipt, Product, ProductEdit, RankedProduct, User,
    };
    use domain::ports::{
        HealthProbe, IdempotencyStore, OrderRepository, Outbox, PaymentRepository,
        ProductRepository, SalesRanking, UserRepository,
    };
    use domain::values::{EventId, Points, ProductId, UserId};

    use super::Spread;

    #[async_trait]
    impl UserRepository for Spread {
        async fn register(&self, id: UserId) -> Result<User, RegisterError> {
            self.pick().register(id).await
        }
        async fn charge(
            &self,
            id: UserId,
            amount: Points,
            remember: Option<Remember>,
        ) -> Result<Points, ChargeError> {
            self.pick().charge(id, amount, remember).await
        }
        async fn balance(&self, id: UserId) -> anyhow::Result<Option<Points>> {
            self.pick().balance(id).await
        }
    }

    #[async_trait]
    impl ProductRepository for Spread {
        async fn product(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
            self.pick().product(id).await
        }
        async fn page(&self, offset: u64, limit: u64) -> anyhow::Result<CatalogPage> {
            self.pick().page(offset, limit).await
        }
        async fn add(&self, product: NewProduct) -> Result<Product, AddProductError> {
            self.pick().add(product).await
        }
        async fn edit(
            &self,
            id: ProductId,
            edit: ProductEdit,
        ) -> Result<Product, EditProductError> {
            self.pick().edit(id, edit).await
        }
    }

    #[async_trait]
    impl OrderRepository for Spread {
        async fn place(
            &self,
            request: OrderRequest,
            remember: Option<Remember>,
        ) -> Result<Order, PlaceOrderError> {
            self.pick().place(request, remember).await
        }
        async fn pending(&self, user: UserId, now: DateTime<Utc>) -> anyhow::Result<Option<Order>> {
            self.pick().pending(user, now).await
        }
        async fn expire_due(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
            self.pick().expire_due(now, limit).await
        }
    }

    #[async_trait]
    impl PaymentRepository for Spread {
        async fn commit_payment(
            &self,
            plan: PaymentPlan,
            remember: Option<Remember>,
        ) -> Result<PaymentReceipt, PayError> {
            self.pick().commit_payment(plan, remember).await
        }
    }

    #[async_trait]
    impl SalesRanking for Spread {
        async fn top_sellers(
            &self,
            since: DateTime<Utc>,
            size: usize,
        ) -> anyhow::Result<Vec<RankedProduct>> {
            self.pick().top_sellers(since, size).await
        }
    }

    #[async_trait]
    impl Outbox for Spread {
        async fn claim_due(
            &self,
            now: DateTime<Utc>,
            lease_until: DateTime<Utc>,
            limit: usize,
        ) -> anyhow::Result<Vec<ClaimedEvent>> {
            self.pick().claim_due(now, lease_until, limit).await
        }
        async fn mark_delivered(&self, ids: Vec<EventId>, at: DateTime<Utc>) -> anyhow::Result<()> {
            self.pick().mark_delivered(ids, at).await
        }
        async fn mark_failed(&self, failures: Vec<FailedAttempt>) -> anyhow::Result<()> {
            self.pick().mark_failed(failures).await
        }
        async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
            self.pick().backlog().await
        }
        async fn purge_delivered(
            &self,
            before: DateTime<Utc>,
            limit: usize,
        ) -> anyhow::Result<usize> {
            self.pick().purge_delivered(before, limit).await
        }
    }

    #[async_trait]
    impl IdempotencyStore for Spread {
        async fn recall(
            &self,
            user: UserId,
            key: String,
            now: DateTime<Utc>,
        ) -> anyhow::Result<Option<IdempotencyRecord>> {
            self.pick().recall(user, key, now).await
        }
        async fn purge_expired(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<usize> {
            self.pick().purge_expired(now, limit).await
        }
    }

    #[async_trait]
    impl HealthProbe for Spread {
        async fn check(&self) -> anyhow::Result<()> {
            self.pick().check().await
        }
    }
}
