"""Reading NDJSON lines from a position, up to the size listed at the start of the read.

Lines are read in large chunks and split in C (`bytes.split`), which keeps the per-line
cost to a slice; .gz files (one or more gzip members) are decompressed with zlib.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from typing import Protocol

CHUNK = 1 << 20
MAX_LINE = 16 << 20
KEPT = 4096  # bytes of an overlong line kept to show in its reject
BOM = b"\xef\xbb\xbf"


class Readable(Protocol):
    """What is read from: a binary file handle."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, /) -> int: ...


class Overlong(bytes):
    """Stands for a line longer than `MAX_LINE`: empty (never valid JSON), with its head.

    Segment refuses messages over 32 KB: such a line is not a message (typically a
    whole JSON array on one line), and holding it could exhaust memory.
    """

    head: bytes
    length: int

    def __new__(cls, head: bytes, length: int) -> Overlong:
        line = super().__new__(cls)
        line.head, line.length = head, length
        return line


class Rewritten(Exception):
    """The file is not the one a previous read stopped in: other content, same name."""


def _raw_chunks(handle: Readable, limit: int) -> Iterator[bytes]:
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
            # At most CHUNK bytes at a time: a small .gz can hold a gigabyte of one byte.
            out = inflater.decompress(data, CHUNK)
            while out:
                yield out
                out = inflater.decompress(inflater.unconsumed_tail, CHUNK)
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
    """Drop the first `count` bytes of a chunk stream; `Rewritten` if no line ends there."""
    if not count:
        yield from chunks
        return
    before = b""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            before = chunk[-1:]
            continue
        _check_boundary(chunk[count - 1 : count + 1] if count else before + chunk[:1])
        yield chunk[count:]
        break
    else:
        if count:
            raise Rewritten("the file is now shorter than where the last read stopped")
    yield from chunks


def _check_boundary(around: bytes) -> None:
    """`around` is the byte before the offset and the byte at it.

    A line ends there when either is a newline (the second: a last line that had no
    newline when it was read, completed since).
    """
    if b"\n" not in around:
        raise Rewritten("no line ends where the last read stopped")


def _without_bom(chunks: Iterator[bytes]) -> tuple[Iterator[bytes], int]:
    """The stream without a leading UTF-8 byte order mark, and how many bytes that dropped.

    Windows tools start "UTF-8" files with one; JSON parsers refuse it, which would
    reject the first line of such a file.
    """
    first = next(chunks, b"")
    if first.startswith(BOM):
        return itertools.chain([first[len(BOM) :]], chunks), len(BOM)
    return itertools.chain([first], chunks), 0


def read_lines(
    handle: Readable, *, gzipped: bool, offset: int, limit: int
) -> Iterator[tuple[bytes, int, bool]]:
    """Yield `(line, end_offset, terminated)` from `offset` on.

    Args:
        handle: The file opened in binary mode (not yet positioned).
        gzipped: Decompress; `offset` and end offsets are then in the decompressed stream.
        offset: Where the previous read stopped (just after a newline).
        limit: Raw (on-disk) size to stop at: the size listed when the read started.

    Raises `Rewritten` (before any line) when no line ends at `offset`.

    `end_offset` is the offset just after the line's newline. The last line may have no
    newline yet; it is yielded with `terminated=False` and its end offset. A UTF-8 byte
    order mark at the start of the file is not part of the first line (offsets count it).
    """
    if gzipped:
        chunks = _skip(_gunzip(_raw_chunks(handle, limit)), offset)
    else:
        if offset:
            handle.seek(offset - 1)
            _check_boundary(handle.read(2))
        handle.seek(offset)
        chunks = _raw_chunks(handle, limit - offset)
    position = offset
    if offset == 0:
        chunks, skipped = _without_bom(chunks)
        position += skipped
    yield from _split(chunks, position)


def _split(chunks: Iterator[bytes], position: int) -> Iterator[tuple[bytes, int, bool]]:
    """`read_lines` from a chunk stream; a line is held in pieces, joined once (linear)."""
    pending: list[bytes] = []  # the start of a line that continues in the next chunk
    held = 0  # its length so far (also past MAX_LINE, where only its head is kept)
    for chunk in chunks:
        parts = chunk.split(b"\n")
        tail = parts.pop()
        if held and parts:
            held += len(parts[0])
            position += held + 1
            yield _join(pending, parts[0], held), position, True
            pending, held = [], 0
            del parts[0]
        for line in parts:
            position += len(line) + 1
            yield line, position, True
        if tail:
            pending.append(tail)
            held += len(tail)
            if held > MAX_LINE and len(pending) > 1:
                pending = [b"".join(pending)[:KEPT]]  # memory stays bounded
    if held:
        yield _join(pending, b"", held), position + held, False


def _join(pending: list[bytes], last: bytes, length: int) -> bytes:
    if length > MAX_LINE:
        return Overlong(b"".join([*pending, last[:KEPT]])[:KEPT], length)
    return b"".join([*pending, last])
