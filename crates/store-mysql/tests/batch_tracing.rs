//! Batched calls keep their request's span: when a batch of coalesced calls fails, each call's
//! log line is written in that call's own span, so every request of the batch is found by its
//! request id.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};
use domain::ports::UserRepository;
use store_contract::support::{points, user_with};
use store_mysql::testing::fresh_store_with_url;
use store_mysql::PoolOptions;
use tracing::Instrument;

const POOL: PoolOptions = PoolOptions {
    size: 4,
    checkout_timeout: Duration::from_secs(10),
    statement_timeout: Duration::from_secs(10),
};

/// A log writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the subscriber is this thread's default, and the batch's drain runs here too.
#[tokio::test(flavor = "current_thread")]
async fn every_request_of_a_failed_batch_is_named_in_its_log_lines() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        // INFO: the request span is an INFO span, as http-api's is.
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (store, url) = fresh_store_with_url(POOL).await;
    let store = Arc::new(store);
    let users = ["u1", "u2", "u3", "u4"];
    for name in users {
        user_with(&store, name, 10).await;
    }
    // Every charge batch now fails: its users are gone.
    tokio::task::spawn_blocking(move || {
        let mut conn = MysqlConnection::establish(&url).expect("connect");
        conn.batch_execute("RENAME TABLE users TO users_gone").expect("rename");
    })
    .await
    .expect("the rename task");

    let calls: Vec<_> = users
        .iter()
        .map(|name| {
            let store = store.clone();
            let user = store_contract::support::uid(name);
            let span = tracing::info_span!("request", request_id = %format!("req-{name}"));
            tokio::spawn(async move { store.charge(user, points(5), None).await }.instrument(span))
        })
        .collect();
    for call in calls {
        let charged = call.await.expect("the call's task");
        assert!(charged.is_err(), "a charge in a failed batch fails: {charged:?}");
    }

    let logged = String::from_utf8(log.0.lock().expect("lock").clone()).expect("UTF-8");
    let failures: Vec<&str> = logged.lines().filter(|l| l.contains("a batch failed")).collect();
    for name in users {
        let id = format!("request_id=req-{name}");
        assert!(
            failures.iter().any(|line| line.contains(&id) && line.contains("batch=")),
            "{id} is named in a failed batch's log line:\n{logged}"
        );
    }
}
