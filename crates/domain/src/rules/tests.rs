//! Each rule's outcomes in the SPEC's check order, and that a refused call changes nothing;
//! proptest folds random call sequences and checks that no unit or point appears or vanishes.

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::model::OrderItems;
use crate::values::{OrderId, PaymentId};

use crate::fixtures::{count, pid, points, shelf, stock, t0, user};

/// alice (balance 1 000) and bob (balance 10); product 1 costs 100 (5 units), product 2 costs 50
/// (1 unit), product 3 costs 2^62 (9 units).
fn shop() -> Snapshot {
    let account = |balance| Account { balance: points(balance), pending: None };
    Snapshot {
        accounts: [(user("alice"), account(1_000)), (user("bob"), account(10))].into(),
        shelves: [(pid(1), shelf(100, 5)), (pid(2), shelf(50, 1)), (pid(3), shelf(1 << 62, 9))]
            .into(),
    }
}

fn request(id: &str, who: &str, lines: &[(i64, i64)]) -> OrderRequest {
    OrderRequest {
        id: OrderId::new(id),
        user_id: user(who),
        items: OrderItems::new(lines.iter().map(|&(p, c)| (pid(p), count(c)))).expect("items"),
        created_at: t0(),
        expires_at: t0() + TimeDelta::seconds(600),
    }
}

fn payment_for(form: &Order, at: DateTime<Utc>) -> Payment {
    Payment {
        id: PaymentId::new(format!("pay-{}", form.id)),
        order_id: form.id.clone(),
        user_id: form.user_id.clone(),
        amount: form.total,
        paid_at: at,
        lines: form.lines.clone(),
    }
}

#[test]
fn place_order_checks_in_spec_order_and_a_refusal_changes_nothing() {
    use PlaceOrderError as E;
    type Case = (&'static str, &'static [(i64, i64)], fn(&PlaceOrderError) -> bool);
    let cases: &[Case] = &[
        // Unknown user before anything else, even an unknown product.
        ("carol", &[(9, 1)], |e| matches!(e, E::UnknownUser(u) if u.as_str() == "carol")),
        // The lowest unknown product, before a stock shortage of a lower one.
        (
            "alice",
            &[(1, 99), (8, 1), (9, 1)],
            |e| matches!(e, E::UnknownProduct(p) if p.get() == 8),
        ),
        // A total past i64::MAX before stock: 2 × 2^62.
        ("alice", &[(3, 2)], |e| matches!(e, E::Amount(AmountError::Overflow))),
        // The lowest short product, before points (bob has 10).
        ("bob", &[(1, 6), (2, 2)], |e| matches!(e, E::LackOfStock(p) if p.get() == 1)),
        ("bob", &[(2, 2)], |e| matches!(e, E::LackOfStock(p) if p.get() == 2)),
        // Points last.
        ("bob", &[(1, 1)], |e| matches!(e, E::LackOfPoints)),
    ];
    for (who, lines, expected) in cases {
        let mut shop = shop();
        let error = place_order(&mut shop, &request("o", who, lines)).expect_err("refused");
        assert!(expected(&error), "{who} {lines:?}: got {error:?}");
        assert_eq!(shop, self::shop(), "{who} {lines:?}: a refusal changes nothing");
    }
}

#[test]
fn pricing_names_the_lowest_unknown_product_and_refuses_an_overflowing_total() {
    let shelves: Shelves = [(pid(1), shelf(10, 1)), (pid(2), shelf(i64::MAX, 1))].into();
    let unknown = price(&request("o", "alice", &[(9, 1), (1, 1), (5, 1)]), &shelves);
    assert!(matches!(unknown, Err(PlaceOrderError::UnknownProduct(p)) if p == pid(5)));
    for lines in [&[(2, 2)][..], &[(1, 1), (2, 1)]] {
        let overflow = price(&request("o", "alice", lines), &shelves);
        assert!(matches!(overflow, Err(PlaceOrderError::Amount(AmountError::Overflow))));
    }
}

#[test]
fn an_order_reserves_its_units_at_this_moments_prices() {
    let mut shop = shop();
    let placed = place_order(&mut shop, &request("o1", "alice", &[(2, 1), (1, 2)])).expect("ok");
    assert_eq!(placed.replaced, None);
    assert_eq!(placed.order.total, points(250));
    let lines: Vec<(i64, i64, i64)> = placed
        .order
        .lines
        .iter()
        .map(|l| (l.product_id.get(), l.count.get(), l.price.get()))
        .collect();
    assert_eq!(lines, [(1, 2, 100), (2, 1, 50)], "one line per product, ascending");
    assert_eq!(shop.shelves[&pid(1)], Shelf { reserved: stock(2), ..shelf(100, 3) });
    assert_eq!(shop.shelves[&pid(2)], Shelf { reserved: stock(1), ..shelf(50, 0) });
    let alice = &shop.accounts[&user("alice")];
    assert_eq!(alice.balance, points(1_000), "an order debits nothing");
    assert_eq!(alice.pending.as_ref(), Some(&placed.order));
}

#[test]
fn a_new_order_replaces_the_pending_form_and_counts_the_units_it_gives_back() {
    let mut shop = shop();
    let first = place_order(&mut shop, &request("o1", "alice", &[(1, 4), (2, 1)])).expect("ok");
    // Only 1 unit of product 1 is left, but the first form gives 4 back.
    let second = place_order(&mut shop, &request("o2", "alice", &[(1, 5)])).expect("ok");
    assert_eq!(second.replaced, Some(first.order));
    assert_eq!(shop.shelves[&pid(1)], Shelf { reserved: stock(5), ..shelf(100, 0) });
    assert_eq!(shop.shelves[&pid(2)], shelf(50, 1), "product 2 is back on the shelf");
    // The units given back count only for the user who gives them.
    let error = place_order(&mut shop, &request("o3", "bob", &[(1, 1)])).expect_err("none left");
    assert!(matches!(error, PlaceOrderError::LackOfStock(p) if p == pid(1)));
}

#[test]
fn a_refused_replacement_keeps_the_old_form_and_its_reservation() {
    let mut shop = shop();
    place_order(&mut shop, &request("o1", "alice", &[(1, 4)])).expect("ok");
    let before = shop.clone();
    let error = place_order(&mut shop, &request("o2", "alice", &[(1, 6)])).expect_err("short");
    assert!(matches!(error, PlaceOrderError::LackOfStock(_)));
    assert_eq!(shop, before);
}

#[test]
fn payment_settles_only_the_named_pending_form_before_its_expiry() {
    let mut shop = shop();
    let form = place_order(&mut shop, &request("o1", "alice", &[(1, 2)])).expect("ok").order;
    let placed = shop.clone();
    let mut wrong_form = payment_for(&form, t0());
    wrong_form.order_id = OrderId::new("other");
    let mut stranger = payment_for(&form, t0());
    stranger.user_id = user("bob");
    for payment in [wrong_form, stranger, payment_for(&form, form.expires_at)] {
        let error = settle_payment(&mut shop, &payment).expect_err("not payable");
        assert!(matches!(error, PayError::NoPendingOrder), "{payment:?}: {error:?}");
        assert_eq!(shop, placed);
    }
    let just_before = form.expires_at - TimeDelta::microseconds(1);
    let settled = settle_payment(&mut shop, &payment_for(&form, just_before)).expect("paid");
    assert_eq!(settled.balance, points(800));
    assert_eq!(settled.form, form);
    assert_eq!(shop.shelves[&pid(1)], shelf(100, 3), "reserved units are sold");
    assert_eq!(shop.accounts[&user("alice")], Account { balance: points(800), pending: None });
    let error = settle_payment(&mut shop, &payment_for(&form, t0())).expect_err("paid once");
    assert!(matches!(error, PayError::NoPendingOrder));
}

#[test]
fn payment_needs_the_points_at_payment_time() {
    let mut shop = shop();
    let form = place_order(&mut shop, &request("o1", "alice", &[(1, 2)])).expect("ok").order;
    shop.accounts.get_mut(&user("alice")).expect("alice").balance = points(199);
    let placed = shop.clone();
    let error = settle_payment(&mut shop, &payment_for(&form, t0())).expect_err("short");
    assert!(matches!(error, PayError::LackOfPoints));
    assert_eq!(shop, placed);
}

#[test]
fn a_payment_over_rows_that_contradict_the_form_is_unexpected_and_changes_nothing() {
    let mut shop = shop();
    let form = place_order(&mut shop, &request("o1", "alice", &[(1, 2)])).expect("ok").order;
    shop.shelves.get_mut(&pid(1)).expect("product 1").reserved = stock(1);
    let broken = shop.clone();
    let error = settle_payment(&mut shop, &payment_for(&form, t0())).expect_err("broken");
    assert!(matches!(error, PayError::Unexpected(_)));
    assert_eq!(shop, broken);
}

#[test]
fn charge_adds_to_known_balances_up_to_the_limit() {
    let mut shop = shop();
    assert_eq!(charge(&mut shop, &user("bob"), points(5)).expect("ok"), points(15));
    let error = charge(&mut shop, &user("carol"), points(5)).expect_err("unknown");
    assert!(matches!(error, ChargeError::UnknownUser(u) if u == user("carol")));
    let before = shop.clone();
    let error = charge(&mut shop, &user("bob"), points(i64::MAX)).expect_err("overflow");
    assert!(matches!(error, ChargeError::Amount(AmountError::Overflow)));
    assert_eq!(shop, before);
}

#[test]
fn a_restock_must_fit_with_the_reserved_units() {
    let mut shop = shop();
    place_order(&mut shop, &request("o1", "alice", &[(1, 5)])).expect("ok");
    let edit =
        |restock: i64| ProductEdit { restock: Some(count(restock)), ..ProductEdit::default() };
    let error = edit_product(&mut shop, pid(9), &edit(1)).expect_err("unknown");
    assert!(matches!(error, EditProductError::UnknownProduct(p) if p == pid(9)));
    // 0 available + 5 reserved + (MAX - 4) passes i64::MAX, though 0 + (MAX - 4) would not.
    let before = shop.clone();
    let error = edit_product(&mut shop, pid(1), &edit(i64::MAX - 4)).expect_err("overflow");
    assert!(matches!(error, EditProductError::Amount(AmountError::Overflow)));
    assert_eq!(shop, before);
    let price = Some(Price::new(7).expect("price"));
    let edited = edit_product(&mut shop, pid(1), &ProductEdit { price, ..edit(i64::MAX - 5) })
        .expect("fits exactly");
    assert_eq!(
        edited,
        Shelf {
            price: Price::new(7).expect("p"),
            available: stock(i64::MAX - 5),
            reserved: stock(5)
        }
    );
    assert_eq!(shop.shelves[&pid(1)], edited);
}

#[test]
fn release_gives_a_forms_units_back_or_changes_nothing() {
    let mut shop = shop();
    let form =
        place_order(&mut shop, &request("o1", "alice", &[(1, 2), (2, 1)])).expect("ok").order;
    let placed = shop.shelves.clone();
    let mut too_many = form.lines.clone();
    too_many.push(OrderLine {
        product_id: pid(1),
        count: count(1),
        price: Price::new(1).expect("p"),
    });
    release(&mut shop.shelves, &too_many).expect_err("more than reserved");
    assert_eq!(shop.shelves, placed);
    release(&mut shop.shelves, &form.lines).expect("released");
    assert_eq!(shop.shelves, self::shop().shelves);
}

/// One call of a random sequence.
#[derive(Debug, Clone)]
enum Call {
    Order { who: usize, lines: Vec<(i64, i64)> },
    Pay { who: usize, late: bool },
    Charge { who: usize, amount: i64 },
    Restock { product: i64, units: i64 },
    Expire { who: usize },
}

const USERS: [&str; 3] = ["u0", "u1", "u2"];

fn call() -> impl Strategy<Value = Call> {
    let who = 0..USERS.len();
    prop_oneof![
        (who.clone(), prop::collection::vec((1..=4_i64, 1..=4_i64), 1..=3))
            .prop_map(|(who, lines)| Call::Order { who, lines }),
        (who.clone(), any::<bool>()).prop_map(|(who, late)| Call::Pay { who, late }),
        (who.clone(), 1..=500_i64).prop_map(|(who, amount)| Call::Charge { who, amount }),
        (1..=4_i64, 1..=3_i64).prop_map(|(product, units)| Call::Restock { product, units }),
        who.prop_map(|who| Call::Expire { who }),
    ]
}

/// Units on the shelf or sold per product, and points held or spent: what the rules move but
/// must never create or lose.
fn totals(shop: &Snapshot, sold: i64, spent: i64) -> (i64, i64) {
    let units: i64 = shop.shelves.values().map(|s| s.available.get() + s.reserved.get()).sum();
    let points: i64 = shop.accounts.values().map(|a| a.balance.get()).sum();
    (units + sold, points + spent)
}

proptest! {
    #[test]
    fn folding_any_calls_neither_creates_nor_loses_units_or_points(
        calls in prop::collection::vec(call(), 1..60)
    ) {
        let mut shop = Snapshot {
            accounts: USERS.iter().map(|u| (user(u), Account { balance: points(300), pending: None })).collect(),
            shelves: (1..=4).map(|p| (pid(p), shelf(10 * p, 3))).collect(),
        };
        let (mut sold, mut spent, mut restocked, mut charged) = (0, 0, 0, 0);
        let start = totals(&shop, 0, 0);
        for (n, call) in calls.into_iter().enumerate() {
            let before = shop.clone();
            let accepted = match call {
                Call::Order { who, lines } => {
                    let mut request = request(&format!("o{n}"), USERS[who], &lines);
                    request.created_at += TimeDelta::seconds(n as i64);
                    place_order(&mut shop, &request).is_ok()
                }
                Call::Pay { who, late } => {
                    let form = shop.accounts[&user(USERS[who])].pending.clone();
                    match form {
                        Some(form) => {
                            let at = if late { form.expires_at } else { form.created_at };
                            let paid = settle_payment(&mut shop, &payment_for(&form, at));
                            if late {
                                prop_assert!(matches!(paid, Err(PayError::NoPendingOrder)));
                            }
                            if let Ok(settled) = &paid {
                                sold += settled.form.lines.iter().map(|l| l.count.get()).sum::<i64>();
                                spent += form.total.get();
                            }
                            paid.is_ok()
                        }
                        None => false,
                    }
                }
                Call::Charge { who, amount } => {
                    let done = charge(&mut shop, &user(USERS[who]), points(amount)).is_ok();
                    charged += if done { amount } else { 0 };
                    done
                }
                Call::Restock { product, units } => {
                    let edit = ProductEdit { restock: Some(count(units)), ..ProductEdit::default() };
                    let done = edit_product(&mut shop, pid(product), &edit).is_ok();
                    restocked += if done { units } else { 0 };
                    done
                }
                Call::Expire { who } => {
                    let account = shop.accounts.get_mut(&user(USERS[who])).expect("user");
                    match account.pending.take() {
                        Some(form) => {
                            release(&mut shop.shelves, &form.lines).expect("consistent rows");
                            true
                        }
                        None => false,
                    }
                }
            };
            if !accepted {
                prop_assert_eq!(&shop, &before, "a refused call changes nothing");
            }
            let reserved: i64 = shop.shelves.values().map(|s| s.reserved.get()).sum();
            let held: i64 = shop.accounts.values().flat_map(|a| &a.pending).flat_map(|f| &f.lines).map(|l| l.count.get()).sum();
            prop_assert_eq!(reserved, held, "reserved units are exactly the pending forms' units");
            let (units, points) = totals(&shop, sold, spent);
            prop_assert_eq!(units, start.0 + restocked);
            prop_assert_eq!(points, start.1 + charged);
        }
    }
}
