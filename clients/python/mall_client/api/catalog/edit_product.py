from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.edit_product_request import EditProductRequest
from ...models.error_1 import Error1
from ...models.error_1_or_2 import Error1Or2
from ...models.error_6 import Error6
from ...models.error_7 import Error7
from ...models.success_product_body import SuccessProductBody
from ...types import Response


def _get_kwargs(
    product_id: int,
    *,
    body: EditProductRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "patch",
        "url": "/product/{product_id}".format(
            product_id=quote(str(product_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody | None:
    if response.status_code == 200:
        response_200 = SuccessProductBody.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = Error1Or2.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Error6.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = Error6.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = Error1.from_dict(response.json())

        return response_404

    if response.status_code == 413:
        response_413 = Error1.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Error1.from_dict(response.json())

        return response_415

    if response.status_code == 503:
        response_503 = Error7.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    product_id: int,
    *,
    client: AuthenticatedClient,
    body: EditProductRequest,
) -> Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody]:
    """Edit or restock a product (admin).

    Args:
        product_id (int):
        body (EditProductRequest): At least one field; a field is left out, never `null`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody]
    """

    kwargs = _get_kwargs(
        product_id=product_id,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    product_id: int,
    *,
    client: AuthenticatedClient,
    body: EditProductRequest,
) -> Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody | None:
    """Edit or restock a product (admin).

    Args:
        product_id (int):
        body (EditProductRequest): At least one field; a field is left out, never `null`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody
    """

    return sync_detailed(
        product_id=product_id,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    product_id: int,
    *,
    client: AuthenticatedClient,
    body: EditProductRequest,
) -> Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody]:
    """Edit or restock a product (admin).

    Args:
        product_id (int):
        body (EditProductRequest): At least one field; a field is left out, never `null`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody]
    """

    kwargs = _get_kwargs(
        product_id=product_id,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    product_id: int,
    *,
    client: AuthenticatedClient,
    body: EditProductRequest,
) -> Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody | None:
    """Edit or restock a product (admin).

    Args:
        product_id (int):
        body (EditProductRequest): At least one field; a field is left out, never `null`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error1 | Error1Or2 | Error6 | Error7 | SuccessProductBody
    """

    return (
        await asyncio_detailed(
            product_id=product_id,
            client=client,
            body=body,
        )
    ).parsed
