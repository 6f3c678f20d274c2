from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.success_order_body_errorcode import SuccessOrderBodyErrorcode

if TYPE_CHECKING:
    from ..models.order_dto import OrderDto


T = TypeVar("T", bound="SuccessOrderBody")


@_attrs_define
class SuccessOrderBody:
    """Every success body starts with `"errorcode": 0`.

    Attributes:
        order (OrderDto):
        errorcode (SuccessOrderBodyErrorcode): 0: success
    """

    order: OrderDto
    errorcode: SuccessOrderBodyErrorcode
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        order = self.order.to_dict()

        errorcode = self.errorcode.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "order": order,
                "errorcode": errorcode,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.order_dto import OrderDto

        d = dict(src_dict)
        order = OrderDto.from_dict(d.pop("order"))

        errorcode = SuccessOrderBodyErrorcode(d.pop("errorcode"))

        success_order_body = cls(
            order=order,
            errorcode=errorcode,
        )

        success_order_body.additional_properties = d
        return success_order_body

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
