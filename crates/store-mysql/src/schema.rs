//! Diesel's view of the tables in `migrations/`. Kept by hand; `tests/schema_drift.rs` fails
//! if a column here and the migrated database disagree.

diesel::table! {
    users (id) {
        id -> Varchar,
        balance -> BigInt,
        created_at -> Datetime,
    }
}

diesel::table! {
    products (id) {
        id -> BigInt,
        name -> Varchar,
        price -> BigInt,
        available -> BigInt,
        reserved -> BigInt,
    }
}

diesel::table! {
    order_forms (id) {
        id -> Varchar,
        user_id -> Varchar,
        pending_user -> Nullable<Varchar>,
        status -> Varchar,
        total -> BigInt,
        created_at -> Datetime,
        expires_at -> Datetime,
        closed_at -> Nullable<Datetime>,
    }
}

diesel::table! {
    order_lines (order_id, product_id) {
        order_id -> Varchar,
        product_id -> BigInt,
        count -> BigInt,
        price -> BigInt,
    }
}

diesel::table! {
    payments (id) {
        id -> Varchar,
        order_id -> Varchar,
        user_id -> Varchar,
        amount -> BigInt,
        paid_at -> Datetime,
    }
}

diesel::table! {
    sales_hourly (hour, product_id) {
        hour -> Datetime,
        product_id -> BigInt,
        units -> BigInt,
    }
}

diesel::table! {
    outbox_events (seq) {
        seq -> BigInt,
        event_id -> Varchar,
        payment_id -> Varchar,
        occurred_at -> Datetime,
        attempts -> Integer,
        next_attempt_at -> Datetime,
        last_error -> Nullable<Varchar>,
        delivered_at -> Nullable<Datetime>,
    }
}

diesel::joinable!(order_forms -> users (user_id));
diesel::joinable!(order_lines -> order_forms (order_id));
diesel::joinable!(order_lines -> products (product_id));
diesel::joinable!(payments -> order_forms (order_id));
diesel::joinable!(sales_hourly -> products (product_id));
diesel::joinable!(outbox_events -> payments (payment_id));

diesel::allow_tables_to_appear_in_same_query!(
    idempotency_keys,
    users,
    products,
    order_forms,
    order_lines,
    payments,
    sales_hourly,
    outbox_events,
);

diesel::table! {
    idempotency_keys (user_id, idem_key) {
        user_id -> Varchar,
        idem_key -> Varchar,
        fingerprint -> Varchar,
        outcome -> Varchar,
        balance -> Nullable<BigInt>,
        order_id -> Nullable<Varchar>,
        payment_id -> Nullable<Varchar>,
        created_at -> Datetime,
        expires_at -> Datetime,
    }
}
