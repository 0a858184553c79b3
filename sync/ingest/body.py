"""Reading a request body within Segment's limits, gzip included, into JSON."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request


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
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise IngestError(400, "invalid_gzip", f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    if not inflater.eof:
        raise IngestError(400, "invalid_gzip", "gzip body is truncated")
    return out


async def read_body(request: Request, limit: int) -> bytes:
    """The body (decompressed), refusing more than `limit` bytes before reading it all."""
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
    raw = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        return _gunzip(raw, limit)
    if encoding not in ("", "identity"):
        raise IngestError(400, "unsupported_encoding", f"Content-Encoding {encoding!r}")
    return raw


def parse_json(raw: bytes) -> Any:
    """Decode JSON, naming the problem when it is not JSON."""
    if not raw.strip():
        raise IngestError(400, "invalid_json", "the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
