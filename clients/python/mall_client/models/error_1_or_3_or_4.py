from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

from ..models.error_1_or_3_or_4_errorcode import Error1Or3Or4Errorcode

T = TypeVar("T", bound="Error1Or3Or4")


@_attrs_define
class Error1Or3Or4:
    """An error: 1 invalid request; 3 lack of point; 4 lack of products.

    Attributes:
        errorcode (Error1Or3Or4Errorcode):
        message (str): for people, not for programs
    """

    errorcode: Error1Or3Or4Errorcode
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
        errorcode = Error1Or3Or4Errorcode(d.pop("errorcode"))

        message = d.pop("message")

        error_1_or_3_or_4 = cls(
            errorcode=errorcode,
            message=message,
        )

        return error_1_or_3_or_4
