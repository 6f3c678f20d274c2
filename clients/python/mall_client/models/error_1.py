from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..models.error_1_errorcode import Error1Errorcode

T = TypeVar("T", bound="Error1")


@_attrs_define
class Error1:
    """An error: 1 invalid request.

    Attributes:
        errorcode (Error1Errorcode):
        message (str): for people, not for programs
    """

    errorcode: Error1Errorcode
    message: str

    def to_dict(self) -> dict[str, Any]:
        errorcode = self.errorcode.value

        message = self.message

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "errorcode": errorcode,
                "message": message,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        errorcode = Error1Errorcode(d.pop("errorcode"))

        message = d.pop("message")

        error_1 = cls(
            errorcode=errorcode,
            message=message,
        )

        return error_1
