from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="ChargeRequest")


@_attrs_define
class ChargeRequest:
    """
    Attributes:
        amount (int): Points to add, at least 1; a balance that would pass 2^63-1 is code 2.
    """

    amount: int

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "amount": amount,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount = d.pop("amount")

        charge_request = cls(
            amount=amount,
        )

        return charge_request
