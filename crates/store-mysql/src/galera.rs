//! What the store needs to know about a MariaDB Galera cluster (docs/operations.md).

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Nullable};
use diesel::{QueryResult, QueryableByName, RunQueryDsl};

use crate::Conn;

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Nullable<BigInt>)]
    value: Option<i64>,
}

/// The number of nodes in this node's cluster (`wsrep_cluster_size`), `None` when the server
/// is not a Galera node.
#[cfg(feature = "testing")]
pub(crate) fn cluster_size(c: &mut Conn) -> QueryResult<Option<i64>> {
    let rows: Vec<Value> = diesel::sql_query(
        "SELECT CAST(variable_value AS SIGNED) AS value FROM information_schema.global_status \
         WHERE variable_name = 'WSREP_CLUSTER_SIZE'",
    )
    .load(c)?;
    Ok(rows.into_iter().find_map(|r| r.value).filter(|&size| size > 0))
}

/// Whether this session replicates through Galera (`@@wsrep_on`); `false` on a server that has
/// no such variable (MySQL).
pub(crate) fn is_on(c: &mut Conn) -> bool {
    diesel::sql_query("SELECT CAST(@@wsrep_on AS SIGNED) AS value")
        .get_result::<Value>(c)
        .is_ok_and(|v| v.value == Some(1))
}

/// How long a Galera node keeps a connection that sends nothing (`wait_timeout`). When a
/// brute-force abort lands on a statement being prepared, MariaDB 10.11 may answer with a
/// packet the client misreads, and the client then waits for an answer that never comes
/// while the server waits for the next command: closing idle connections after a few seconds
/// turns that wait into a lost connection (the call fails and is retried or answered 503).
/// Pooled connections idle that long are replaced when next used (see `pool`).
pub(crate) const IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Fails with a deadlock error (so the transaction is retried) when the session is no longer in
/// the transaction it began. On Galera, a transaction can be rolled back under the client by a
/// conflicting write from another node (a brute-force abort); the next statement should then
/// fail with 1213, but when that statement is being prepared (`COM_STMT_PREPARE`), MariaDB
/// 10.11 may answer OK instead, and the statements after it run in autocommit — reads that
/// look like the transaction's (a claim handed out twice, seen in the contract suite), or a
/// client left waiting for an answer that never comes. Checked before COMMIT on Galera only.
pub(crate) fn still_in_transaction(c: &mut Conn) -> QueryResult<()> {
    if !crate::pool::on_galera(c) {
        return Ok(());
    }
    let inside: Value =
        diesel::sql_query("SELECT CAST(@@in_transaction AS SIGNED) AS value").get_result(c)?;
    if inside.value == Some(1) {
        return Ok(());
    }
    Err(DieselError::DatabaseError(
        DatabaseErrorKind::SerializationFailure,
        Box::new(
            "Deadlock found: the transaction was rolled back under the client (Galera \
             brute-force abort)"
                .to_owned(),
        ),
    ))
}

/// A batch's writes as one atomic compound statement (MariaDB's `BEGIN NOT ATOMIC … END`),
/// still one round trip, that first checks it runs inside the caller's transaction.
///
/// Sent as a plain multi-statement text, the writes are separate statements to the server: on
/// Galera, when a conflicting write from another node rolls the transaction back while the
/// text runs (a brute-force abort), the statement running fails but the ones after it run on
/// in autocommit, commit and replicate — payments without their forms settled, order lines
/// without their form (foreign-key errors), and, in issue 12's run, 502 payments for 500
/// units. Inside one compound statement an abort stops the whole block, and a transaction
/// already rolled back before the block makes it signal a deadlock instead of writing.
pub(crate) fn atomic_writes(statements: &str) -> String {
    format!(
        "BEGIN NOT ATOMIC \
           IF @@in_transaction = 0 THEN \
             SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = \
               'Deadlock found: the transaction was rolled back before its writes'; \
           END IF; \
           {statements}; \
         END"
    )
}
