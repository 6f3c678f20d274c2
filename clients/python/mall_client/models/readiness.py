from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.readiness_checks_type_0 import ReadinessChecksType0


T = TypeVar("T", bound="Readiness")


@_attrs_define
class Readiness:
    """The body of `/ready` (its schema in the description; the handler writes it as JSON).

    Attributes:
        errorcode (int): 0 when ready, 7 when not.
        checks (None | ReadinessChecksType0 | Unset): Each check: `{"ok": bool, ...}` with its detail.
        failing (list[str] | None | Unset): The failing checks' names: `database`, `migrations`, `relay`.
        message (None | str | Unset): `not ready: <the failing checks>` (only when not ready).
        status (None | str | Unset): `ready` or `not ready`.
    """

    errorcode: int
    checks: None | ReadinessChecksType0 | Unset = UNSET
    failing: list[str] | None | Unset = UNSET
    message: None | str | Unset = UNSET
    status: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.readiness_checks_type_0 import ReadinessChecksType0

        errorcode = self.errorcode

        checks: dict[str, Any] | None | Unset
        if isinstance(self.checks, Unset):
            checks = UNSET
        elif isinstance(self.checks, ReadinessChecksType0):
            checks = self.checks.to_dict()
        else:
            checks = self.checks

        failing: list[str] | None | Unset
        if isinstance(self.failing, Unset):
            failing = UNSET
        elif isinstance(self.failing, list):
            failing = self.failing

        else:
            failing = self.failing

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        status: None | str | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        else:
            status = self.status

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "errorcode": errorcode,
            }
        )
        if checks is not UNSET:
            field_dict["checks"] = checks
        if failing is not UNSET:
            field_dict["failing"] = failing
        if message is not UNSET:
            field_dict["message"] = message
        if status is not UNSET:
            field_dict["status"] = status

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.readiness_checks_type_0 import ReadinessChecksType0

        d = dict(src_dict)
        errorcode = d.pop("errorcode")

        def _parse_checks(data: object) -> None | ReadinessChecksType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                checks_type_0 = ReadinessChecksType0.from_dict(data)

                return checks_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ReadinessChecksType0 | Unset, data)

        checks = _parse_checks(d.pop("checks", UNSET))

        def _parse_failing(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                failing_type_0 = cast(list[str], data)

                return failing_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        failing = _parse_failing(d.pop("failing", UNSET))

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        def _parse_status(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        status = _parse_status(d.pop("status", UNSET))

        readiness = cls(
            errorcode=errorcode,
            checks=checks,
            failing=failing,
            message=message,
            status=status,
        )

        readiness.additional_properties = d
        return readiness

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
