//! The shop's rules: what one call decides, as pure functions over the rows it needs.
//!
//! A store gathers those rows into a [`Snapshot`] — the memory store keeps its whole state in
//! one, a MySQL batch loads the rows it has locked — and folds each call through the rule that
//! decides it, in queue order: [`place_order`] (price, reserve, replace the previous form),
//! [`settle_payment`], [`charge`], [`edit_product`] (restock) and [`release`] (an expired
//! form's units back on the shelf). Then the store persists what changed. Stores lock, load and
//! persist; they do not decide.
//!
//! Every rule checks everything before it changes anything, in the SPEC's order, on the
//! checked value types: a refused call leaves the snapshot exactly as it found it. An
//! `Unexpected` answer means the rows contradict each other (a bug, a corrupt database); the
//! snapshot is unchanged then too, so the store fails that call alone — a batch answers it
//! `Unexpected` and writes nothing of it, the expiry sweep logs the form and leaves it pending.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use anyhow::anyhow;

use crate::errors::{ChargeError, EditProductError, PayError, PlaceOrderError};
use crate::model::{Order, OrderLine, OrderRequest, OrderStatus, Payment, ProductEdit};
use crate::values::{AmountError, Points, Price, ProductId, Stock, UserId};

/// A product's row as the rules see it: its price, the units that can be ordered, and the units
/// pending forms hold (`available + reserved` is what is on the shelf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shelf {
    pub price: Price,
    pub available: Stock,
    pub reserved: Stock,
}

/// A user's row as the rules see it: the balance and the pending form, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub balance: Points,
    /// At most one form per user waits for payment.
    pub pending: Option<Order>,
}

/// Products by id.
pub type Shelves = BTreeMap<ProductId, Shelf>;

/// The rows the calls being decided need. A user or product missing from it is unknown to the
/// rules: a store loads every row its calls name (and, for an order, the products of the
/// user's pending form, which it gives back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub accounts: HashMap<UserId, Account>,
    pub shelves: Shelves,
}

/// An accepted order: the new pending form, and the form it replaced (its reservation is
/// released in the same step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub order: Order,
    pub replaced: Option<Order>,
}

/// An accepted payment: the balance after it, and the form it settled (its lines are the units
/// sold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub balance: Points,
    pub form: Order,
}

/// Prices `request` at the shelves' prices: one line per product, by product id ascending, and
/// their total.
///
/// # Errors
/// [`PlaceOrderError::UnknownProduct`] for the lowest product id not on `shelves`;
/// [`PlaceOrderError::Amount`] when the total passes `i64::MAX`.
pub fn price(request: &OrderRequest, shelves: &Shelves) -> Result<Order, PlaceOrderError> {
    let lines = request
        .items
        .iter()
        .map(|(product_id, count)| {
            let shelf =
                shelves.get(&product_id).ok_or(PlaceOrderError::UnknownProduct(product_id))?;
            Ok(OrderLine { product_id, count, price: shelf.price })
        })
        .collect::<Result<Vec<_>, PlaceOrderError>>()?;
    let total = lines
        .iter()
        .try_fold(Points::ZERO, |total, line| total.checked_add(line.price.times(line.count)?))?;
    Ok(Order {
        id: request.id.clone(),
        user_id: request.user_id.clone(),
        lines,
        total,
        created_at: request.created_at,
        expires_at: request.expires_at,
        status: OrderStatus::Pending,
    })
}

/// Places an order (SPEC §1.5): prices it at this moment's prices, reserves its units, and
/// replaces the user's pending form, whose units count as available to this order.
///
/// # Errors
/// In SPEC order: [`PlaceOrderError::UnknownUser`], [`PlaceOrderError::UnknownProduct`] (the
/// lowest unknown id), [`PlaceOrderError::Amount`] (the total passes `i64::MAX`),
/// [`PlaceOrderError::LackOfStock`] (the lowest short id), [`PlaceOrderError::LackOfPoints`]
/// (the balance must cover the total now; it is debited at payment). On error `shop` is
/// unchanged.
pub fn place_order(
    shop: &mut Snapshot,
    request: &OrderRequest,
) -> Result<Placement, PlaceOrderError> {
    let Some(account) = shop.accounts.get(&request.user_id) else {
        return Err(PlaceOrderError::UnknownUser(request.user_id.clone()));
    };
    let order = price(request, &shop.shelves)?;
    let old_lines = account.pending.as_ref().map_or(&[][..], |form| &form.lines[..]);
    let given_back = |product: ProductId| {
        old_lines.iter().filter(|l| l.product_id == product).map(|l| l.count.get()).sum::<i64>()
    };
    for line in &order.lines {
        let available = shop.shelves[&line.product_id].available.get();
        if available.saturating_add(given_back(line.product_id)) < line.count.get() {
            return Err(PlaceOrderError::LackOfStock(line.product_id));
        }
    }
    if account.balance < order.total {
        return Err(PlaceOrderError::LackOfPoints);
    }

    let mut changed = Shelves::new();
    for line in old_lines {
        give_back(&mut changed, &shop.shelves, line)?;
    }
    for line in &order.lines {
        let shelf = working_copy(&mut changed, &shop.shelves, line.product_id)?;
        shelf.available = shelf.available.checked_take(line.count).ok_or_else(|| {
            anyhow!("product {} lost stock while an order was decided", line.product_id)
        })?;
        shelf.reserved = shelf.reserved.checked_add(line.count).map_err(anyhow::Error::from)?;
    }
    shop.shelves.extend(changed);
    let account = account_mut(shop, &order.user_id)?;
    let replaced = account.pending.replace(order.clone());
    Ok(Placement { order, replaced })
}

/// The form `payment` may settle: its user's pending form, when it is the one named and still
/// payable at `payment.paid_at` ([`Order::is_payable_at`]). A store locks only that form's
/// products for the payment; any other payment is refused by [`settle_payment`] without them.
#[must_use]
pub fn payable_form<'a>(shop: &'a Snapshot, payment: &Payment) -> Option<&'a Order> {
    let account = shop.accounts.get(&payment.user_id)?;
    let form = account.pending.as_ref()?;
    (form.id == payment.order_id && form.is_payable_at(payment.paid_at)).then_some(form)
}

/// Pays the user's pending form (SPEC §1.6): debits the amount, and the form's reserved units
/// become units sold.
///
/// # Errors
/// [`PayError::NoPendingOrder`] unless the form `payment.order_id` is the user's pending form
/// and payable at `payment.paid_at` ([`Order::is_payable_at`]); [`PayError::LackOfPoints`] when
/// the balance does not cover `payment.amount`. On error `shop` is unchanged.
pub fn settle_payment(shop: &mut Snapshot, payment: &Payment) -> Result<Settlement, PayError> {
    let Some(form) = payable_form(shop, payment) else {
        return Err(PayError::NoPendingOrder);
    };
    let Some(account) = shop.accounts.get(&payment.user_id) else {
        return Err(PayError::NoPendingOrder);
    };
    let Some(balance) = account.balance.checked_sub(payment.amount) else {
        return Err(PayError::LackOfPoints);
    };
    let mut changed = Shelves::new();
    for line in &form.lines {
        let shelf = working_copy(&mut changed, &shop.shelves, line.product_id)?;
        shelf.reserved = shelf.reserved.checked_take(line.count).ok_or_else(|| {
            anyhow!(
                "product {} has fewer units reserved than form {} holds",
                line.product_id,
                form.id
            )
        })?;
    }
    shop.shelves.extend(changed);
    let account = account_mut(shop, &payment.user_id)?;
    account.balance = balance;
    let form = account.pending.take().ok_or_else(|| anyhow!("the paid form vanished"))?;
    Ok(Settlement { balance, form })
}

/// Adds `amount` to the user's balance (SPEC §1.2) and returns the new balance.
///
/// # Errors
/// [`ChargeError::UnknownUser`]; [`ChargeError::Amount`] when the balance would pass
/// `i64::MAX`. On error `shop` is unchanged.
pub fn charge(shop: &mut Snapshot, user: &UserId, amount: Points) -> Result<Points, ChargeError> {
    let Some(account) = shop.accounts.get_mut(user) else {
        return Err(ChargeError::UnknownUser(user.clone()));
    };
    account.balance = account.balance.checked_add(amount)?;
    Ok(account.balance)
}

/// Applies an admin's edit to a product's price and stock (the name is the store's to write):
/// a restock adds to the available units.
///
/// # Errors
/// [`EditProductError::UnknownProduct`]; [`EditProductError::Amount`] when the units on the
/// shelf (available plus reserved, which come back on expiry) would pass `i64::MAX`. On error
/// `shop` is unchanged.
pub fn edit_product(
    shop: &mut Snapshot,
    id: ProductId,
    edit: &ProductEdit,
) -> Result<Shelf, EditProductError> {
    let Some(shelf) = shop.shelves.get_mut(&id) else {
        return Err(EditProductError::UnknownProduct(id));
    };
    let available = match edit.restock {
        Some(units) => {
            let on_shelf = shelf.available.get().checked_add(shelf.reserved.get());
            Stock::new(on_shelf.ok_or(AmountError::Overflow)?)?.checked_add(units)?;
            shelf.available.checked_add(units)?
        }
        None => shelf.available,
    };
    shelf.available = available;
    if let Some(price) = edit.price {
        shelf.price = price;
    }
    Ok(*shelf)
}

/// Gives the units of a form that ends unpaid (expired, or replaced) back to the available
/// stock.
///
/// # Errors
/// When a line's product is not on `shelves` or holds fewer reserved units than the line: the
/// rows contradict each other. On error `shelves` is unchanged.
pub fn release(shelves: &mut Shelves, lines: &[OrderLine]) -> anyhow::Result<()> {
    let mut changed = Shelves::new();
    for line in lines {
        give_back(&mut changed, shelves, line)?;
    }
    shelves.extend(changed);
    Ok(())
}

/// Moves one line's units from reserved back to available, on the working copy.
fn give_back(changed: &mut Shelves, shelves: &Shelves, line: &OrderLine) -> anyhow::Result<()> {
    let shelf = working_copy(changed, shelves, line.product_id)?;
    shelf.reserved = shelf.reserved.checked_take(line.count).ok_or_else(|| {
        anyhow!("product {} has fewer units reserved than a form gives back", line.product_id)
    })?;
    shelf.available = shelf.available.checked_add(line.count)?;
    Ok(())
}

/// The shelf of `id` as a rule has changed it so far (copied from `shelves` on first use).
fn working_copy<'a>(
    changed: &'a mut Shelves,
    shelves: &Shelves,
    id: ProductId,
) -> anyhow::Result<&'a mut Shelf> {
    Ok(match changed.entry(id) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => {
            entry.insert(*shelves.get(&id).ok_or_else(|| anyhow!("product {id} is not loaded"))?)
        }
    })
}

fn account_mut<'a>(shop: &'a mut Snapshot, user: &UserId) -> anyhow::Result<&'a mut Account> {
    shop.accounts.get_mut(user).ok_or_else(|| anyhow!("user {user} is not loaded"))
}

#[cfg(test)]
mod tests;
