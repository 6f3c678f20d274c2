from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.order_line_dto import OrderLineDto


T = TypeVar("T", bound="OrderDto")


@_attrs_define
class OrderDto:
    """
    Attributes:
        expires_at (str):
        id (str):
        items (list[OrderLineDto]):
        total (int):
    """

    expires_at: str
    id: str
    items: list[OrderLineDto]
    total: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        expires_at = self.expires_at

        id = self.id

        items = []
        for items_item_data in self.items:
            items_item = items_item_data.to_dict()
            items.append(items_item)

        total = self.total

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "expires_at": expires_at,
                "id": id,
                "items": items,
                "total": total,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.order_line_dto import OrderLineDto

        d = dict(src_dict)
        expires_at = d.pop("expires_at")

        id = d.pop("id")

        items = []
        _items = d.pop("items")
        for items_item_data in _items:
            items_item = OrderLineDto.from_dict(items_item_data)

            items.append(items_item)

        total = d.pop("total")

        order_dto = cls(
            expires_at=expires_at,
            id=id,
            items=items,
            total=total,
        )

        order_dto.additional_properties = d
        return order_dto

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
