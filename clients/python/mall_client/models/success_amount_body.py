from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.success_amount_body_errorcode import SuccessAmountBodyErrorcode

T = TypeVar("T", bound="SuccessAmountBody")


@_attrs_define
class SuccessAmountBody:
    """Every success body starts with `"errorcode": 0`.

    Attributes:
        amount (int):
        errorcode (SuccessAmountBodyErrorcode): 0: success
    """

    amount: int
    errorcode: SuccessAmountBodyErrorcode
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        errorcode = self.errorcode.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "errorcode": errorcode,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        amount = d.pop("amount")

        errorcode = SuccessAmountBodyErrorcode(d.pop("errorcode"))

        success_amount_body = cls(
            amount=amount,
            errorcode=errorcode,
        )

        success_amount_body.additional_properties = d
        return success_amount_body

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
