from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="RankedDto")


@_attrs_define
class RankedDto:
    """
    Attributes:
        id (int):
        name (str):
        price (int):
        quantity (int): The available stock: reserved units excluded.
        sold (int):
    """

    id: int
    name: str
    price: int
    quantity: int
    sold: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name = self.name

        price = self.price

        quantity = self.quantity

        sold = self.sold

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "name": name,
                "price": price,
                "quantity": quantity,
                "sold": sold,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        price = d.pop("price")

        quantity = d.pop("quantity")

        sold = d.pop("sold")

        ranked_dto = cls(
            id=id,
            name=name,
            price=price,
            quantity=quantity,
            sold=sold,
        )

        ranked_dto.additional_properties = d
        return ranked_dto

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
