from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="EditProductRequest")


@_attrs_define
class EditProductRequest:
    """At least one field; a field is left out, never `null`.

    Attributes:
        name (str | Unset): Trimmed of white space, then 1-200 characters and no control characters.
        price (int | Unset): The new price, for later orders.
        restock (int | Unset): Units to add to the available stock; the units on the shelf may not pass 2^63-1.
    """

    name: str | Unset = UNSET
    price: int | Unset = UNSET
    restock: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        price = self.price

        restock = self.restock

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if name is not UNSET:
            field_dict["name"] = name
        if price is not UNSET:
            field_dict["price"] = price
        if restock is not UNSET:
            field_dict["restock"] = restock

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        name = d.pop("name", UNSET)

        price = d.pop("price", UNSET)

        restock = d.pop("restock", UNSET)

        edit_product_request = cls(
            name=name,
            price=price,
            restock=restock,
        )

        return edit_product_request
