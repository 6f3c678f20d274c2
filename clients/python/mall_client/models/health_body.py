from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.outbox_health import OutboxHealth


T = TypeVar("T", bound="HealthBody")


@_attrs_define
class HealthBody:
    """
    Attributes:
        outbox (OutboxHealth): The payment events still waiting for the data platform.
        status (str):
    """

    outbox: OutboxHealth
    status: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        outbox = self.outbox.to_dict()

        status = self.status

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "outbox": outbox,
                "status": status,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.outbox_health import OutboxHealth

        d = dict(src_dict)
        outbox = OutboxHealth.from_dict(d.pop("outbox"))

        status = d.pop("status")

        health_body = cls(
            outbox=outbox,
            status=status,
        )

        health_body.additional_properties = d
        return health_body

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
