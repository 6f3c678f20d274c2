from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="OutboxHealth")


@_attrs_define
class OutboxHealth:
    """The payment events still waiting for the data platform.

    Attributes:
        failing (int): Of those, how many have failed at least once.
        undelivered (int):
        last_error (None | str | Unset): The last error of the oldest failing event, with any URL in it shown as
            `<url>`.
        oldest_age_secs (float | None | Unset): How long the oldest has waited, in seconds; `null` when none waits.
    """

    failing: int
    undelivered: int
    last_error: None | str | Unset = UNSET
    oldest_age_secs: float | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        failing = self.failing

        undelivered = self.undelivered

        last_error: None | str | Unset
        if isinstance(self.last_error, Unset):
            last_error = UNSET
        else:
            last_error = self.last_error

        oldest_age_secs: float | None | Unset
        if isinstance(self.oldest_age_secs, Unset):
            oldest_age_secs = UNSET
        else:
            oldest_age_secs = self.oldest_age_secs

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "failing": failing,
                "undelivered": undelivered,
            }
        )
        if last_error is not UNSET:
            field_dict["last_error"] = last_error
        if oldest_age_secs is not UNSET:
            field_dict["oldest_age_secs"] = oldest_age_secs

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        failing = d.pop("failing")

        undelivered = d.pop("undelivered")

        def _parse_last_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_error = _parse_last_error(d.pop("last_error", UNSET))

        def _parse_oldest_age_secs(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        oldest_age_secs = _parse_oldest_age_secs(d.pop("oldest_age_secs", UNSET))

        outbox_health = cls(
            failing=failing,
            undelivered=undelivered,
            last_error=last_error,
            oldest_age_secs=oldest_age_secs,
        )

        outbox_health.additional_properties = d
        return outbox_health

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
