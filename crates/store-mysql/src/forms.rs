//! Reading order forms back: their lines, one form or many.

use diesel::prelude::*;

use crate::rows::LineRow;
use crate::schema::order_lines;
use crate::Conn;

/// One form's lines: a statement diesel keeps prepared (an `IN` list is prepared anew each time).
pub(crate) fn lines_of_form(c: &mut Conn, order_id: &str) -> QueryResult<Vec<LineRow>> {
    order_lines::table
        .filter(order_lines::order_id.eq(order_id))
        .order(order_lines::product_id)
        .select(LineRow::as_select())
        .load(c)
}

/// The lines of several forms, by form and product.
pub(crate) fn lines_of(c: &mut Conn, order_ids: &[String]) -> QueryResult<Vec<LineRow>> {
    order_lines::table
        .filter(order_lines::order_id.eq_any(order_ids))
        .order((order_lines::order_id, order_lines::product_id))
        .select(LineRow::as_select())
        .load(c)
}
