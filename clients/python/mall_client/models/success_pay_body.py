from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.success_pay_body_errorcode import SuccessPayBodyErrorcode

if TYPE_CHECKING:
    from ..models.payment_dto import PaymentDto


T = TypeVar("T", bound="SuccessPayBody")


@_attrs_define
class SuccessPayBody:
    """Every success body starts with `"errorcode": 0`.

    Attributes:
        amount (int): The balance after the payment.
        payment (PaymentDto):
        errorcode (SuccessPayBodyErrorcode): 0: success
    """

    amount: int
    payment: PaymentDto
    errorcode: SuccessPayBodyErrorcode
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        payment = self.payment.to_dict()

        errorcode = self.errorcode.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "payment": payment,
                "errorcode": errorcode,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.payment_dto import PaymentDto

        d = dict(src_dict)
        amount = d.pop("amount")

        payment = PaymentDto.from_dict(d.pop("payment"))

        errorcode = SuccessPayBodyErrorcode(d.pop("errorcode"))

        success_pay_body = cls(
            amount=amount,
            payment=payment,
            errorcode=errorcode,
        )

        success_pay_body.additional_properties = d
        return success_pay_body

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
