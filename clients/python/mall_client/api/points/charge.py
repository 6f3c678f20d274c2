from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.charge_request import ChargeRequest
from ...models.error_1 import Error1
from ...models.error_1_or_2 import Error1Or2
from ...models.error_6 import Error6
from ...models.error_7 import Error7
from ...models.success_amount_body import SuccessAmountBody
from ...types import UNSET, Response, Unset


def _get_kwargs(
    user_id: str,
    *,
    body: ChargeRequest,
    idempotency_key: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    _kwargs: dict[str, Any] = {
        "method": "patch",
        "url": "/user/{user_id}/charge".format(
            user_id=quote(str(user_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody | None:
    if response.status_code == 200:
        response_200 = SuccessAmountBody.from_dict(response.json())

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

    if response.status_code == 409:
        response_409 = Error1.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = Error1.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Error1.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = Error1.from_dict(response.json())

        return response_422

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
) -> Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    user_id: str,
    *,
    client: AuthenticatedClient,
    body: ChargeRequest,
    idempotency_key: str | Unset = UNSET,
) -> Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody]:
    """Charge points.

    Args:
        user_id (str):
        idempotency_key (str | Unset):
        body (ChargeRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody]
    """

    kwargs = _get_kwargs(
        user_id=user_id,
        body=body,
        idempotency_key=idempotency_key,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    user_id: str,
    *,
    client: AuthenticatedClient,
    body: ChargeRequest,
    idempotency_key: str | Unset = UNSET,
) -> Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody | None:
    """Charge points.

    Args:
        user_id (str):
        idempotency_key (str | Unset):
        body (ChargeRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody
    """

    return sync_detailed(
        user_id=user_id,
        client=client,
        body=body,
        idempotency_key=idempotency_key,
    ).parsed


async def asyncio_detailed(
    user_id: str,
    *,
    client: AuthenticatedClient,
    body: ChargeRequest,
    idempotency_key: str | Unset = UNSET,
) -> Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody]:
    """Charge points.

    Args:
        user_id (str):
        idempotency_key (str | Unset):
        body (ChargeRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody]
    """

    kwargs = _get_kwargs(
        user_id=user_id,
        body=body,
        idempotency_key=idempotency_key,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    user_id: str,
    *,
    client: AuthenticatedClient,
    body: ChargeRequest,
    idempotency_key: str | Unset = UNSET,
) -> Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody | None:
    """Charge points.

    Args:
        user_id (str):
        idempotency_key (str | Unset):
        body (ChargeRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Error1 | Error1Or2 | Error6 | Error7 | SuccessAmountBody
    """

    return (
        await asyncio_detailed(
            user_id=user_id,
            client=client,
            body=body,
            idempotency_key=idempotency_key,
        )
    ).parsed
