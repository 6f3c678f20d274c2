"""The README's walk-through, through the Python client generated from /openapi.json.

Usage: python walkthrough.py <base URL> <admin token>   (run from this folder, with the
packages of fuzz/requirements.txt: `make fuzz-deps` puts them in .venv-fuzz/).

Registers a user, charges points, adds two products (admin), orders, reads the pending form,
pays it and reads the best sellers — each answer parsed into the generated models — then
shows that errors come back typed too. Prints one JSON line with what it saw; exits non-zero
on the first surprise. crates/app/tests/python_client.rs runs it against a live server.
"""

import json
import sys
import uuid

from mall_client import AuthenticatedClient, Client
from mall_client.api.catalog import add_product, product, ranked
from mall_client.api.orders import order, pay, pending_order
from mall_client.api.points import charge, point, register
from mall_client.models import (
    ChargeRequest,
    Error1Or2,
    Error1Or3Or4,
    Error1Or5,
    ItemRequest,
    NewProductRequest,
    RegisterRequest,
    SuccessAmountBody,
    SuccessOrderBody,
    SuccessPayBody,
    SuccessProductBody,
    SuccessRankedBody,
)


def expect(answer, model, status):
    if answer.status_code != status or not isinstance(answer.parsed, model):
        sys.exit(f"expected {status} {model.__name__}, got {answer.status_code}: {answer.content!r}")
    return answer.parsed


def main(base, token):
    shopper = Client(base_url=base, raise_on_unexpected_status=True)
    admin = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    user = f"py-{uuid.uuid4().hex[:12]}"

    registered = register.sync_detailed(client=shopper, body=RegisterRequest(id=user))
    assert expect(registered, SuccessAmountBody, 201).amount == 0
    charged = charge.sync_detailed(
        user, client=shopper, body=ChargeRequest(amount=20_000), idempotency_key=f"{user}-charge"
    )
    assert expect(charged, SuccessAmountBody, 200).amount == 20_000

    tea = expect(
        add_product.sync_detailed(
            client=admin, body=NewProductRequest(name="Green tea", price=3_000, quantity=10)
        ),
        SuccessProductBody,
        201,
    ).product
    cake = expect(
        add_product.sync_detailed(
            client=admin, body=NewProductRequest(name="Cheesecake", price=4_500, quantity=5)
        ),
        SuccessProductBody,
        201,
    ).product

    items = [ItemRequest(product_id=tea.id, count=2), ItemRequest(product_id=cake.id, count=1)]
    form = expect(order.sync_detailed(user, client=shopper, body=items), SuccessOrderBody, 200).order
    assert form.total == 2 * 3_000 + 4_500, form
    shelf = expect(product.sync_detailed(tea.id, client=shopper), SuccessProductBody, 200).product
    assert shelf.quantity == 8, shelf  # two units reserved
    pending = expect(pending_order.sync_detailed(user, client=shopper), SuccessOrderBody, 200)
    assert pending.order.id == form.id

    paid = expect(pay.sync_detailed(user, client=shopper, body=items[::-1]), SuccessPayBody, 200)
    assert paid.amount == 20_000 - form.total and paid.payment.order_id == form.id, paid
    balance = expect(point.sync_detailed(user, client=shopper), SuccessAmountBody, 200).amount
    assert balance == paid.amount

    best = expect(ranked.sync_detailed(client=shopper), SuccessRankedBody, 200).products
    sold = {p.id: p.sold for p in best}
    assert sold.get(tea.id) == 2 and sold.get(cake.id) == 1, best

    # Errors are typed too: each status parses into the schema naming its error codes.
    again = pay.sync_detailed(user, client=shopper, body=items)
    assert expect(again, Error1Or5, 404).errorcode.value == 5  # paid: no pending form
    greedy = [ItemRequest(product_id=cake.id, count=5)]
    short = expect(order.sync_detailed(user, client=shopper, body=greedy), Error1Or3Or4, 409)
    assert short.errorcode.value == 4, short  # 4 left: lack of products
    zero = charge.sync_detailed(user, client=shopper, body=ChargeRequest(amount=0))
    assert expect(zero, Error1Or2, 400).errorcode.value == 2

    print(
        json.dumps(
            {
                "user": user,
                "order": form.id,
                "total": form.total,
                "payment": paid.payment.id,
                "balance": balance,
                "ranked": [[p.id, p.sold] for p in best],
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
