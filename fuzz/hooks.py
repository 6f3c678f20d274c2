"""Schemathesis hooks for mall (loaded by schemathesis.toml).

`refusals_of_valid_data_are_stateful`: a schema-valid request may be refused with 400 or 422
only for the reasons SPEC §2 gives that a schema cannot express — what is stored, or the body
as a whole. Any other refusal of valid data fails the run, on every operation (this is what
`positive_data_acceptance` checks, kept for the four operations whose 400/422 it lets through;
see docs/adr/0008-schema-driven-testing.md).
"""

import schemathesis

IDEMPOTENCY_MISMATCH = (422, 1, "this Idempotency-Key was used for a different request")
# Lines naming one product are summed: more than 1 000 000 units, or 100 distinct products.
ITEMS = [
    (400, 1, "an order has at most 100 distinct products"),
    (400, 2, "one order takes at most 1000000 units of a product"),
    (400, 2, "the counts for one product add up past the limit"),
]

# (status, errorcode, how the message starts) for each operation.
STATEFUL_REFUSALS = {
    "PATCH /user/{user_id}/charge": [
        (400, 2, "the balance would be too large"),
        IDEMPOTENCY_MISMATCH,
    ],
    "PATCH /product/{product_id}": [
        (400, 2, "the stock would be too large"),
    ],
    "POST /order/{user_id}": [
        (400, 2, "the order total is too large"),
        *ITEMS,
        IDEMPOTENCY_MISMATCH,
    ],
    "POST /order/{user_id}/pay": [
        (400, 1, "the items differ from the pending order form"),
        *ITEMS,
        IDEMPOTENCY_MISMATCH,
    ],
}


@schemathesis.check
def refusals_of_valid_data_are_stateful(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422):
        return None
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("errorcode") if isinstance(body, dict) else None
    message = body.get("message", "") if isinstance(body, dict) else ""
    for status, errorcode, start in STATEFUL_REFUSALS.get(case.operation.label, []):
        if response.status_code == status and code == errorcode and message.startswith(start):
            return None
    raise AssertionError(
        f"A schema-valid request was refused ({response.status_code}, errorcode {code}: "
        f"{message!r}), and not for a reason that depends on stored state or the whole body"
    )
