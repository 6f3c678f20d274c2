from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_1 import Error1
from ...models.error_6 import Error6
from ...models.error_7 import Error7
from ...models.register_request import RegisterRequest
from ...models.success_amount_body import SuccessAmountBody
from ...types import Response


def _get_kwargs(
    *,
    body: RegisterRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/user",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Error1 | Error6 | Error7 | SuccessAmountBody | None:
    if response.status_code == 201:
        response_201 = SuccessAmountBody.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = Error1.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Error6.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = Error6.from_dict(response.json())

        return response_403

    if response.status_code == 409:
        response_409 = Error1.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = Error1.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Error1.from_dict(response.json())

        return response_415

    if response.status_code == 429:
        response_429 = Error7.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = Error7.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Error1 | Error6 | Error7 | SuccessAmountBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: RegisterRequest,
) -> Response[Error1 | Error6 | Error7 | SuccessAmountBody]:
    """Register a user.

    Args:
        body (RegisterRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error1 | Error6 | Error7 | SuccessAmountBody]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: RegisterRequest,
) -> Error1 | Error6 | Error7 | SuccessAmountBody | None:
    """Register a user.

    Args:
        body (RegisterRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error1 | Error6 | Error7 | SuccessAmountBody
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: RegisterRequest,
) -> Response[Error1 | Error6 | Error7 | SuccessAmountBody]:
    """Register a user.

    Args:
        body (RegisterRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error1 | Error6 | Error7 | SuccessAmountBody]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: RegisterRequest,
) -> Error1 | Error6 | Error7 | SuccessAmountBody | None:
    """Register a user.

    Args:
        body (RegisterRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error1 | Error6 | Error7 | SuccessAmountBody
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
