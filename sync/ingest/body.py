"""Reading a request body within Segment's limits, gzip included, into JSON."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request


class IngestError(Exception):
    """A request refused as a whole, answered as Segment does: `{code, message}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _too_large(limit: int) -> IngestError:
    return IngestError(400, "batch_too_large", f"request body exceeds {limit} bytes")


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Every member of a gzip stream (RFC 1952 allows several), at most `limit` bytes."""
    out = bytearray()
    rest = raw
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise IngestError(400, "invalid_gzip", f"body is not valid gzip: {exc}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
        if not inflater.eof:
            raise IngestError(400, "invalid_gzip", "gzip body is truncated")
        rest = inflater.unused_data  # the next member, or bytes that must be one
    return bytes(out)


async def _read_all(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body (decompressed), refusing more than `limit` bytes before reading it all.

    A body not received within `timeout` seconds is answered 408, which Segment
    libraries retry; a slow or stalled client cannot hold a connection for ever.
    """
    try:
        async with asyncio.timeout(timeout):
            raw = await _read_all(request, limit)
    except TimeoutError:
        message = f"the body was not received within {timeout:g} s"
        raise IngestError(408, "request_timeout", message) from None
    except ClientDisconnect:
        message = "the client closed the connection before sending the whole body"
        raise IngestError(400, "incomplete_body", message) from None
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        return _gunzip(raw, limit)
    if encoding not in ("", "identity"):
        raise IngestError(400, "unsupported_encoding", f"Content-Encoding {encoding!r}")
    return raw


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _scrubbed(value: Any) -> Any:
    """`value` with lone UTF-16 surrogates in its strings and keys replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    return value


def _parse_leniently(raw: bytes) -> Any:
    """JSON whose strings hold invalid UTF-8 or lone surrogates (a browser cutting an
    emoji in half), repaired with U+FFFD as Go's `encoding/json` does, instead of
    refusing every message of the batch for one bad character."""
    value = json.loads(raw.decode("utf-8", "replace"), parse_constant=_no_constant)
    return _scrubbed(value)


def parse_json(raw: bytes) -> Any:
    """Decode JSON, naming the problem when it is not JSON."""
    if not raw.strip():
        raise IngestError(400, "invalid_json", "the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        return _parse_leniently(raw)
    except (ValueError, RecursionError):
        raise IngestError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
