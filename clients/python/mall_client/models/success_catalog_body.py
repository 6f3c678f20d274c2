from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.success_catalog_body_errorcode import SuccessCatalogBodyErrorcode

if TYPE_CHECKING:
    from ..models.product_dto import ProductDto


T = TypeVar("T", bound="SuccessCatalogBody")


@_attrs_define
class SuccessCatalogBody:
    """Every success body starts with `"errorcode": 0`.

    Attributes:
        products (list[ProductDto]):
        total (int):
        errorcode (SuccessCatalogBodyErrorcode): 0: success
    """

    products: list[ProductDto]
    total: int
    errorcode: SuccessCatalogBodyErrorcode
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        products = []
        for products_item_data in self.products:
            products_item = products_item_data.to_dict()
            products.append(products_item)

        total = self.total

        errorcode = self.errorcode.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "products": products,
                "total": total,
                "errorcode": errorcode,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.product_dto import ProductDto

        d = dict(src_dict)
        products = []
        _products = d.pop("products")
        for products_item_data in _products:
            products_item = ProductDto.from_dict(products_item_data)

            products.append(products_item)

        total = d.pop("total")

        errorcode = SuccessCatalogBodyErrorcode(d.pop("errorcode"))

        success_catalog_body = cls(
            products=products,
            total=total,
            errorcode=errorcode,
        )

        success_catalog_body.additional_properties = d
        return success_catalog_body

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
