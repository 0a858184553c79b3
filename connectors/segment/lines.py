"""Reading NDJSON lines from a position, up to the size listed at the start of the read.

Lines are read in large chunks and split in C (`bytes.split`), which keeps the per-line
cost to a slice; .gz files (one or more gzip members) are decompressed with zlib.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import IO

CHUNK = 1 << 20


def _raw_chunks(handle: IO[bytes], limit: int) -> Iterator[bytes]:
    remaining = limit
    while remaining > 0:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The decompressed stream; `zlib.error` for data that is not gzip, or ends mid-stream."""
    inflater = zlib.decompressobj(wbits=31)
    fed = False  # the current member has started
    for chunk in chunks:
        data = chunk
        while data:
            fed = True
            out = inflater.decompress(data)
            if out:
                yield out
            if not inflater.eof:
                break
            # A new gzip member follows (files can be concatenated gzip streams).
            data, fed = inflater.unused_data, False
            inflater = zlib.decompressobj(wbits=31)
    tail = inflater.flush()
    if tail:
        yield tail
    if fed and not inflater.eof:
        raise zlib.error("the gzip stream ends early (a truncated file)")


def _skip(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    """Drop the first `count` bytes of a chunk stream."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:]
        count = 0
        break
    yield from chunks


def read_lines(
    handle: IO[bytes], *, gzipped: bool, offset: int, limit: int
) -> Iterator[tuple[bytes, int, bool]]:
    """Yield `(line, end_offset, terminated)` from `offset` on.

    Args:
        handle: The file opened in binary mode (not yet positioned).
        gzipped: Decompress; `offset` and end offsets are then in the decompressed stream.
        offset: Where the previous read stopped (just after a newline).
        limit: Raw (on-disk) size to stop at: the size listed when the read started.

    `end_offset` is the offset just after the line's newline. The last line may have no
    newline yet; it is yielded with `terminated=False` and its end offset.
    """
    if gzipped:
        chunks = _skip(_gunzip(_raw_chunks(handle, limit)), offset)
    else:
        handle.seek(offset)
        chunks = _raw_chunks(handle, limit - offset)
    position = offset
    pending = b""
    for chunk in chunks:
        parts = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
        pending = parts.pop()
        for line in parts:
            position += len(line) + 1
            yield line, position, True
    if pending:
        yield pending, position + len(pending), False
