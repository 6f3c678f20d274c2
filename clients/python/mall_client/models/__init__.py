"""Contains all the data models used in inputs/outputs"""

from .amount_body import AmountBody
from .catalog_body import CatalogBody
from .charge_request import ChargeRequest
from .edit_product_request import EditProductRequest
from .error_1 import Error1
from .error_1_errorcode import Error1Errorcode
from .error_1_or_2 import Error1Or2
from .error_1_or_2_errorcode import Error1Or2Errorcode
from .error_1_or_3 import Error1Or3
from .error_1_or_3_errorcode import Error1Or3Errorcode
from .error_1_or_3_or_4 import Error1Or3Or4
from .error_1_or_3_or_4_errorcode import Error1Or3Or4Errorcode
from .error_1_or_5 import Error1Or5
from .error_1_or_5_errorcode import Error1Or5Errorcode
from .error_6 import Error6
from .error_6_errorcode import Error6Errorcode
from .error_7 import Error7
from .error_7_errorcode import Error7Errorcode
from .error_code import ErrorCode
from .error_response import ErrorResponse
from .health_body import HealthBody
from .item_request import ItemRequest
from .new_product_request import NewProductRequest
from .order_body import OrderBody
from .order_dto import OrderDto
from .order_line_dto import OrderLineDto
from .outbox_health import OutboxHealth
from .pay_body import PayBody
from .payment_dto import PaymentDto
from .product_body import ProductBody
from .product_dto import ProductDto
from .ranked_body import RankedBody
from .ranked_dto import RankedDto
from .readiness import Readiness
from .readiness_checks_type_0 import ReadinessChecksType0
from .register_request import RegisterRequest
from .success_amount_body import SuccessAmountBody
from .success_amount_body_errorcode import SuccessAmountBodyErrorcode
from .success_catalog_body import SuccessCatalogBody
from .success_catalog_body_errorcode import SuccessCatalogBodyErrorcode
from .success_health_body import SuccessHealthBody
from .success_health_body_errorcode import SuccessHealthBodyErrorcode
from .success_order_body import SuccessOrderBody
from .success_order_body_errorcode import SuccessOrderBodyErrorcode
from .success_pay_body import SuccessPayBody
from .success_pay_body_errorcode import SuccessPayBodyErrorcode
from .success_product_body import SuccessProductBody
from .success_product_body_errorcode import SuccessProductBodyErrorcode
from .success_ranked_body import SuccessRankedBody
from .success_ranked_body_errorcode import SuccessRankedBodyErrorcode

__all__ = (
    "AmountBody",
    "CatalogBody",
    "ChargeRequest",
    "EditProductRequest",
    "Error1",
    "Error1Errorcode",
    "Error1Or2",
    "Error1Or2Errorcode",
    "Error1Or3",
    "Error1Or3Errorcode",
    "Error1Or3Or4",
    "Error1Or3Or4Errorcode",
    "Error1Or5",
    "Error1Or5Errorcode",
    "Error6",
    "Error6Errorcode",
    "Error7",
    "Error7Errorcode",
    "ErrorCode",
    "ErrorResponse",
    "HealthBody",
    "ItemRequest",
    "NewProductRequest",
    "OrderBody",
    "OrderDto",
    "OrderLineDto",
    "OutboxHealth",
    "PayBody",
    "PaymentDto",
    "ProductBody",
    "ProductDto",
    "RankedBody",
    "RankedDto",
    "Readiness",
    "ReadinessChecksType0",
    "RegisterRequest",
    "SuccessAmountBody",
    "SuccessAmountBodyErrorcode",
    "SuccessCatalogBody",
    "SuccessCatalogBodyErrorcode",
    "SuccessHealthBody",
    "SuccessHealthBodyErrorcode",
    "SuccessOrderBody",
    "SuccessOrderBodyErrorcode",
    "SuccessPayBody",
    "SuccessPayBodyErrorcode",
    "SuccessProductBody",
    "SuccessProductBodyErrorcode",
    "SuccessRankedBody",
    "SuccessRankedBodyErrorcode",
)
