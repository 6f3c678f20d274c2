from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="ItemRequest")


@_attrs_define
class ItemRequest:
    """One line of an order or pay body: `{"product_id": 1, "count": 2}`. Lines naming the same
    product are summed; an order has at most 100 distinct products and at most 1 000 000 units
    of one product.

        Attributes:
            count (int):
            product_id (int):
    """

    count: int
    product_id: int

    def to_dict(self) -> dict[str, Any]:
        count = self.count

        product_id = self.product_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "count": count,
                "product_id": product_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        count = d.pop("count")

        product_id = d.pop("product_id")

        item_request = cls(
            count=count,
            product_id=product_id,
        )

        return item_request
