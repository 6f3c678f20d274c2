//! `schema.rs` matches what the migrations create: every table diesel knows has exactly the
//! columns, in the same order, that the migrated database has.

use diesel::mysql::Mysql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::{debug_query, Connection, MysqlConnection, QueryableByName};
use store_mysql::schema::{
    idempotency_keys, order_forms, order_lines, outbox_events, payments, products, sales_hourly,
    users,
};
use store_mysql::testing::fresh_database_url;

/// The columns diesel selects for `SELECT table.*`, read from the SQL it generates.
fn declared<Q: diesel::query_builder::QueryFragment<Mysql>>(query: Q) -> Vec<String> {
    let sql = debug_query::<Mysql, _>(&query).to_string();
    let select = sql.split(" FROM ").next().expect("a SELECT");
    select
        .split(", ")
        .map(|column| column.rsplit('.').next().expect("a column").trim_matches('`').to_owned())
        .collect()
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
}

#[test]
fn schema_rs_matches_the_migrations() {
    let url = fresh_database_url();
    store_mysql::migrate(&url).expect("migrations apply");
    let mut conn = MysqlConnection::establish(&url).expect("connect");
    let tables: Vec<(&str, Vec<String>)> = vec![
        ("users", declared(users::table.select(users::all_columns))),
        ("products", declared(products::table.select(products::all_columns))),
        ("order_forms", declared(order_forms::table.select(order_forms::all_columns))),
        ("order_lines", declared(order_lines::table.select(order_lines::all_columns))),
        ("payments", declared(payments::table.select(payments::all_columns))),
        ("sales_hourly", declared(sales_hourly::table.select(sales_hourly::all_columns))),
        ("outbox_events", declared(outbox_events::table.select(outbox_events::all_columns))),
        (
            "idempotency_keys",
            declared(idempotency_keys::table.select(idempotency_keys::all_columns)),
        ),
    ];
    let migrated: Vec<String> = diesel::sql_query(
        "SELECT table_name AS name FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name NOT IN ('__diesel_schema_migrations', '__mall_migration_lock') \
         ORDER BY table_name",
    )
    .load::<Column>(&mut conn)
    .expect("list tables")
    .into_iter()
    .map(|c| c.name)
    .collect();
    let mut known: Vec<String> = tables.iter().map(|(t, _)| (*t).to_owned()).collect();
    known.sort();
    assert_eq!(known, migrated, "tables in schema.rs vs the migrated database");

    for (table, columns) in tables {
        let actual: Vec<String> = diesel::sql_query(
            "SELECT column_name AS name FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
        )
        .bind::<Text, _>(table)
        .load::<Column>(&mut conn)
        .expect("list columns")
        .into_iter()
        .map(|c| c.name)
        .collect();
        assert_eq!(columns, actual, "columns of {table}: schema.rs vs the migrated database");
    }
}

#[test]
fn migrating_twice_applies_nothing_the_second_time() {
    let url = fresh_database_url();
    assert_eq!(store_mysql::migrate(&url).expect("first run").len(), 8);
    assert!(store_mysql::migrate(&url).expect("second run").is_empty());
}
