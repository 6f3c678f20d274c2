from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="PaymentDto")


@_attrs_define
class PaymentDto:
    """
    Attributes:
        amount (int):
        id (str):
        order_id (str):
        paid_at (str):
    """

    amount: int
    id: str
    order_id: str
    paid_at: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        id = self.id

        order_id = self.order_id

        paid_at = self.paid_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "id": id,
                "order_id": order_id,
                "paid_at": paid_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount = d.pop("amount")

        id = d.pop("id")

        order_id = d.pop("order_id")

        paid_at = d.pop("paid_at")

        payment_dto = cls(
            amount=amount,
            id=id,
            order_id=order_id,
            paid_at=paid_at,
        )

        payment_dto.additional_properties = d
        return payment_dto

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
