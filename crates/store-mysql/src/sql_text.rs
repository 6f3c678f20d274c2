//! SQL text for the statements a batch sends in one round trip (`batch_execute` runs several
//! statements at once on MariaDB's text protocol, where a prepared statement would cost a
//! prepare, an execute and a close each). Values are written as literals that need no escaping:
//! strings as hex literals, times in MariaDB's own format, integers as digits.

use std::fmt::Write as _;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::QueryResult;

use crate::Conn;

/// A string as a hex literal (`X'616c696365'`): any byte is safe inside it.
pub(crate) fn text(value: &str) -> String {
    let mut out = String::with_capacity(3 + 2 * value.len());
    out.push_str("X'");
    for byte in value.bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out.push('\'');
    out
}

/// A time as a `DATETIME(6)` literal.
pub(crate) fn datetime(value: NaiveDateTime) -> String {
    value.format("'%Y-%m-%d %H:%M:%S%.6f'").to_string()
}

/// `NULL`, or the time.
pub(crate) fn datetime_or_null(value: Option<NaiveDateTime>) -> String {
    value.map_or_else(|| "NULL".to_owned(), datetime)
}

/// `NULL`, or the string.
pub(crate) fn text_or_null(value: Option<&str>) -> String {
    value.map_or_else(|| "NULL".to_owned(), text)
}

/// The most text one round trip carries: far below MariaDB's `max_allowed_packet` (16 MiB by
/// default), which a batch touching hundreds of thousands of rows could pass.
const MAX_TEXT: usize = 4 << 20;

/// Sends `sql` (statements joined by `;\n`, as this module builds them) in one round trip, or
/// in several of at most [`MAX_TEXT`] when it is longer (statements in order, each whole; the
/// literals of this module never contain `;\n`). `sql` must not be empty. Each round trip is
/// one atomic compound statement that first checks it runs in its transaction
/// ([`crate::galera::atomic_writes`]): no write can outlive the transaction.
pub(crate) fn execute(c: &mut Conn, sql: &str) -> QueryResult<()> {
    if sql.len() <= MAX_TEXT {
        return c.batch_execute(&crate::galera::atomic_writes(sql));
    }
    let mut text = String::new();
    for statement in sql.split(";\n") {
        if !text.is_empty() && text.len() + statement.len() + 2 > MAX_TEXT {
            c.batch_execute(&crate::galera::atomic_writes(&text))?;
            text.clear();
        }
        if !text.is_empty() {
            text.push_str(";\n");
        }
        text.push_str(statement);
    }
    c.batch_execute(&crate::galera::atomic_writes(&text))
}

/// Rows per `UPDATE … CASE` statement: MariaDB tries a row's `WHEN`s one by one, so one
/// statement for n rows costs n² comparisons; in statements of this many rows a batch that
/// touches 100 000 rows stays quick.
const ROWS_PER_UPDATE: usize = 1_000;

/// `UPDATE {table} SET {column} = CASE id WHEN … END[, …] WHERE id IN (…)`: per-row values for
/// rows named by `id`, in one statement per [`ROWS_PER_UPDATE`] rows (joined by `;`, in the
/// rows' order). `rows` holds (id literal, one literal per column).
pub(crate) fn update_by_id(
    table: &str,
    columns: &[&str],
    rows: &[(String, Vec<String>)],
) -> String {
    let statements: Vec<String> =
        rows.chunks(ROWS_PER_UPDATE).map(|chunk| update_chunk(table, columns, chunk)).collect();
    statements.join(";\n")
}

fn update_chunk(table: &str, columns: &[&str], rows: &[(String, Vec<String>)]) -> String {
    let mut sql = format!("UPDATE {table} SET ");
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "{column} = CASE id");
        for (id, values) in rows {
            let _ = write!(sql, " WHEN {id} THEN {}", values[i]);
        }
        sql.push_str(" END");
    }
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let _ = write!(sql, " WHERE id IN ({})", ids.join(","));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_need_no_escaping() {
        assert_eq!(text("a'b\\"), "X'6127625c'");
        assert_eq!(text(""), "X''");
        let at =
            NaiveDateTime::parse_from_str("2026-11-26 07:55:01.000042", "%Y-%m-%d %H:%M:%S%.f")
                .expect("a time");
        assert_eq!(datetime(at), "'2026-11-26 07:55:01.000042'");
        assert_eq!(datetime_or_null(None), "NULL");
    }

    #[test]
    fn many_rows_are_updated_a_thousand_at_a_time() {
        let rows: Vec<(String, Vec<String>)> =
            (0..2_500).map(|id| (id.to_string(), vec!["0".to_owned()])).collect();
        let sql = update_by_id("users", &["balance"], &rows);
        let statements: Vec<&str> = sql.split(";\n").collect();
        assert_eq!(statements.len(), 3);
        assert!(statements[0].ends_with(",999)") && statements[2].contains("WHERE id IN (2000,"));
        assert_eq!(sql.matches(" WHEN ").count(), 2_500);
    }

    #[test]
    fn one_update_sets_each_row_its_own_values() {
        let rows = vec![
            ("1".to_owned(), vec!["5".to_owned(), "7".to_owned()]),
            ("2".to_owned(), vec!["0".to_owned(), "9".to_owned()]),
        ];
        assert_eq!(
            update_by_id("products", &["available", "reserved"], &rows),
            "UPDATE products SET available = CASE id WHEN 1 THEN 5 WHEN 2 THEN 0 END, \
             reserved = CASE id WHEN 1 THEN 7 WHEN 2 THEN 9 END WHERE id IN (1,2)"
        );
    }
}
