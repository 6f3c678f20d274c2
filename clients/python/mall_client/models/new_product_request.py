from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="NewProductRequest")


@_attrs_define
class NewProductRequest:
    """
    Attributes:
        name (str): Trimmed of white space, then 1-200 characters and no control characters.
        price (int):
        quantity (int): The units on the shelf, 0 or more.
    """

    name: str
    price: int
    quantity: int

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        price = self.price

        quantity = self.quantity

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "price": price,
                "quantity": quantity,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        name = d.pop("name")

        price = d.pop("price")

        quantity = d.pop("quantity")

        new_product_request = cls(
            name=name,
            price=price,
            quantity=quantity,
        )

        return new_product_request
