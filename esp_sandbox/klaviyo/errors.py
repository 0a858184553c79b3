"""Klaviyo's JSON:API error shape.

Real responses carry `id`, `status`, `code`, `title`, `detail`, `source`,
`links` and `meta` (see esp-api-contracts.md §1.7); the official SDK parses
them into its `GetAccounts4XXResponse` model.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

JSONAPI = "application/vnd.api+json"
_TITLES = {
    400: "Invalid input.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    413: "Request entity too large.",
    415: "Unsupported media type.",
    429: "Request was throttled.",
    500: "A server error occurred.",
    502: "Bad gateway.",
    503: "Service unavailable.",
}


class KlaviyoError(Exception):
    """An error answered in Klaviyo's shape; raise it from any Klaviyo route."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        pointer: str | None = "/data",
        parameter: str | None = None,
        title: str | None = None,
        meta: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.errors = [
            error_object(
                status,
                code,
                detail,
                pointer=pointer,
                parameter=parameter,
                title=title,
                meta=meta,
                links=links,
            )
        ]
        self.headers = headers or {}

    @classmethod
    def many(cls, status: int, errors: list[dict[str, Any]]) -> KlaviyoError:
        """One response carrying several error objects (e.g. a bulk request)."""
        first = errors[0]
        exc = cls(status, str(first["code"]), str(first["detail"]))
        exc.errors = errors
        return exc


def error_object(
    status: int,
    code: str,
    detail: str,
    *,
    pointer: str | None = "/data",
    parameter: str | None = None,
    title: str | None = None,
    meta: dict[str, Any] | None = None,
    links: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One JSON:API error object in Klaviyo's layout."""
    source: dict[str, str] = {}
    if pointer is not None:
        source["pointer"] = pointer
    if parameter is not None:
        source["parameter"] = parameter
    return {
        "id": str(uuid.uuid4()),
        "status": status,
        "code": code,
        "title": title or _TITLES.get(status, "Error."),
        "detail": detail,
        "source": source,
        "links": links or {},
        "meta": meta or {},
    }


def error_response(
    status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Response:
    """A response with Klaviyo's error document."""
    return Response(
        orjson.dumps({"errors": errors}),
        status_code=status,
        media_type=JSONAPI,
        headers=headers,
    )


def fault_body(status: int, detail: str) -> tuple[bytes, str]:
    """Body and content type for an injected fault on a Klaviyo route."""
    code = {429: "throttled", 500: "error", 502: "bad_gateway", 503: "service_unavailable"}
    pointer = "/data" if status == 429 else None
    obj = error_object(status, code.get(status, "error"), detail, pointer=pointer)
    if status == 429:
        obj["links"] = {
            "type": "https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling"
        }
    return orjson.dumps({"errors": [obj]}), JSONAPI


async def handle_klaviyo_error(request: Request, exc: Exception) -> Response:
    """FastAPI exception handler for `KlaviyoError`."""
    assert isinstance(exc, KlaviyoError)
    return error_response(exc.status, exc.errors, exc.headers)
