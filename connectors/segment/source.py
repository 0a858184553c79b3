"""The `segment` source: Segment-spec NDJSON files, local or in Segment's S3 layout.

Files are read in name order, line by line, in bounded batches. Each batch carries the
bookmark reached after it (see `connectors.segment.files` for its shape and for how late
files and growing files are handled). Malformed lines become `RejectedRow`s naming
``<file>:<line>`` and the field; the read goes on.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import orjson

from connectors.base import Bookmark, SourceBatch
from connectors.errors import SourceUnavailable
from connectors.segment.files import (
    DAY_FOLDER,
    FilePosition,
    LogFile,
    SegmentBookmark,
    day_of,
    is_log_file,
    seal_target,
)
from connectors.segment.gc_pause import gc_paused, gc_resumed
from connectors.segment.lines import MAX_LINE, Overlong, Rewritten, read_lines
from connectors.segment.settings import DEFAULT_PATTERN, SegmentSourceSettings
from mapping.message import MessageError, parse_message
from mapping.types import Message, RejectedRow

__all__ = ["SegmentSource", "SourceError", "SourceStats"]

log = logging.getLogger(__name__)
PAYLOAD_LIMIT = 2048


class SourceError(SourceUnavailable):
    """The source cannot be reached or listed; the message says why."""


@dataclass(slots=True)
class SourceStats:
    """Counters of the current (or last) read.

    Attributes:
        files: Files opened.
        read: Lines read (messages + rejects; blank lines are not counted).
        messages: Valid messages yielded.
        rejects: Lines rejected.
        duplicates: Messages whose messageId was already seen recently (passed through).
    """

    files: int = 0
    read: int = 0
    messages: int = 0
    rejects: int = 0
    duplicates: int = 0


class _RecentIds:
    """Remembers about the last `window` messageIds in O(1) per id (two generations)."""

    def __init__(self, window: int) -> None:
        self._half = max(window // 2, 1)
        self._enabled = window > 0
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def seen(self, message_id: str) -> bool:
        if not self._enabled:
            return False
        if message_id in self._current or message_id in self._previous:
            return True
        self._current.add(message_id)
        if len(self._current) >= self._half:
            self._previous, self._current = self._current, set()
        return False


def _open_fs(path: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    try:
        fs, root = fsspec.core.url_to_fs(path, **storage_options)
    except ImportError as exc:
        if path.startswith(("gs://", "gcs://")):
            raise SourceError(
                "gs:// paths need gcsfs: install espbridge with the gcs extra "
                "(pip install 'espbridge[gcs]')"
            ) from exc
        raise SourceError(f"cannot open {path!r}: {exc}") from exc
    return fs, str(root)


def _reject(name: str, line_no: int, line: bytes, field: str | None, reason: str) -> RejectedRow:
    text = line[:PAYLOAD_LIMIT].decode("utf-8", errors="replace")
    return RejectedRow(
        source_ref=f"{name}:{line_no}",
        field=field,
        reason=reason,
        stage="source",
        payload={"line": text},
    )


def _bad_line(
    name: str, line_no: int, line: bytes, terminated: bool, exc: Exception
) -> RejectedRow | None:
    """The reject for a line that is not JSON; None for a blank line."""
    if isinstance(line, Overlong):
        reason = (
            f"the line is {line.length:,} bytes, longer than {MAX_LINE >> 20} MiB: not a "
            "message (one JSON object per line is expected; Segment's limit is 32 KB)"
        )
        return _reject(name, line_no, line.head, "$", reason)
    if line.isspace() or not line:
        return None
    if terminated:
        return _reject(name, line_no, line, "$", f"invalid JSON: {exc}")
    reason = f"invalid JSON in the last line, which has no newline: {exc}"
    return _reject(name, line_no, line, "$", reason)


def _unreadable(name: str, line_no: int, reason: str) -> RejectedRow:
    return RejectedRow(
        source_ref=f"{name}:{line_no + 1}",
        field=None,
        reason=f"unreadable gzip data after line {line_no}: {reason}; "
        "the rest of the file is not read",
        stage="source",
        payload={"file": name, "lines_read": line_no},
    )


def _describe(exc: BaseException) -> str:
    """An fsspec error for a message: its text names the path and the reason."""
    if isinstance(exc, TypeError):  # s3fs/gcsfs refusing an unknown keyword
        return f"{exc} (check storage_options)"
    return str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"


class _IOFailed(Exception):
    """Opening or reading a listed file failed (`cause`): told apart from our own errors."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Guarded:
    """A file handle whose errors come out as `_IOFailed`, whatever the filesystem raises."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def read(self, size: int = -1, /) -> bytes:
        try:
            return bytes(self._handle.read(size))
        except Exception as exc:
            raise _IOFailed(exc) from exc

    def seek(self, offset: int, /) -> int:
        try:
            return int(self._handle.seek(offset))
        except Exception as exc:
            raise _IOFailed(exc) from exc


class SegmentSource:
    """Reads Segment-spec messages from NDJSON files incrementally.

    Args:
        settings: The `[sources.<name>]` section.
        name: The source's name in the config.
    """

    def __init__(self, settings: SegmentSourceSettings, name: str = "segment") -> None:
        self.name = name
        self.settings = settings
        self.stats = SourceStats()
        self._fs, self._root = _open_fs(settings.path, settings.fs_options())
        self._root = self._root.rstrip("/")

    def list_files(self, sealed_before: int | None = None) -> list[LogFile]:
        """List the log files under the root with their sizes, in name order.

        Args:
            sealed_before: Leave out the day folders (directly under the root) of days
                before this one: they are sealed, and listing them again on every read
                would make each read cost as much as the bucket's whole history.
        """
        self._fs.invalidate_cache()  # a long-lived source must see new files on every read
        try:
            found = self._find(sealed_before)
            missing = not found and not self._fs.exists(self._root)
        except FileNotFoundError:
            missing = True
        except Exception as exc:  # denied, unreachable (botocore's own errors), bad option
            raise SourceError(f"{self.settings.path}: cannot list: {_describe(exc)}") from exc
        if missing:
            raise SourceError(f"{self.settings.path}: no such folder")
        files = []
        prefix = len(self._root) + 1
        for path, info in found.items():
            name = path[prefix:] if path.startswith(self._root + "/") else path
            if info.get("type") != "file" or not is_log_file(name):
                continue
            files.append(LogFile(path, name, int(info["size"]), day_of(name, info)))
        files.sort(key=lambda f: f.name)
        return files

    def _find(self, sealed_before: int | None) -> dict[str, dict[str, Any]]:
        pattern = f"{self._root}/{self.settings.pattern}"
        if sealed_before is None or self.settings.pattern != DEFAULT_PATTERN:
            return dict(self._fs.glob(pattern, detail=True))
        found: dict[str, dict[str, Any]] = {}
        for entry in self._fs.ls(self._root, detail=True):  # one level: a delimiter listing
            path = str(entry["name"]).rstrip("/")
            folder = path.rsplit("/", 1)[-1]
            if entry["type"] != "directory":
                found[path] = entry
            elif not DAY_FOLDER.match(folder) or int(folder) >= sealed_before:
                found.update(self._fs.glob(f"{path}/{DEFAULT_PATTERN}", detail=True))
        return found

    def _grew(self, log_file: LogFile) -> bool:
        """Whether the file is larger now than when listed: a .gz that ends early because
        it is still being copied in, not one cut short."""
        try:
            return int(self._fs.info(log_file.path)["size"]) > log_file.size
        except Exception:  # gone or unreadable: judged as it was listed
            return False

    def _open(self, path: str) -> Any:
        try:
            return self._fs.open(path, "rb")
        except Exception as exc:
            raise _IOFailed(exc) from exc

    def check(self) -> str:
        """List the folder; describe what is there or raise `SourceError`."""
        files = self.list_files()
        size = sum(f.size for f in files)
        days = {f.day for f in files if f.day is not None}
        return (
            f"segment source {self.name!r}: {len(files)} files, {size} bytes, "
            f"{len(days)} day folders under {self.settings.path}"
        )

    def read(self, bookmark: Bookmark | None, *, batch_size: int) -> Iterator[SourceBatch]:
        """Yield batches of at most `batch_size` lines after `bookmark`.

        The listing taken now caps the read: data appearing meanwhile is read next time.
        The last batch may be empty; it still carries the final bookmark.
        """
        state = SegmentBookmark.load(bookmark)
        initial = state.dump()
        self.stats = SourceStats()
        recent = _RecentIds(self.settings.duplicate_window)
        batch = _Batch()
        listing = self.list_files(state.sealed_before)
        seal = seal_target(listing, self.settings.late_days, int(time.time() * 1000))
        for log_file in state.open_files(listing):
            if seal is not None and log_file.day is not None and log_file.day >= seal:
                state.seal(seal)
            position = state.files.get(log_file.name)
            if position is not None and position.complete_size == log_file.size:
                continue
            if position is not None and not log_file.gzipped and position.offset > log_file.size:
                log.warning("%s shrank below the offset read: reading it again", log_file.name)
                del state.files[log_file.name]
            # A file of a day sealed by this read is final: nothing will complete its last line.
            final = seal is not None and log_file.day is not None and log_file.day < seal
            yield from self._read_file(log_file, state, batch, recent, batch_size, final)
        if seal is not None:
            state.seal(seal)
        if batch.size or state.dump() != initial:
            yield batch.flush(state, self.stats)

    def _read_file(
        self,
        log_file: LogFile,
        state: SegmentBookmark,
        batch: _Batch,
        recent: _RecentIds,
        batch_size: int,
        final: bool,
    ) -> Iterator[SourceBatch]:
        name = log_file.name
        try:
            try:
                yield from self._read_lines(log_file, state, batch, recent, batch_size, final)
            except Rewritten as exc:  # e.g. logrotate's copytruncate, then new lines
                log.warning("%s was rewritten (%s): reading it again from its start", name, exc)
                state.files[name] = FilePosition(day=log_file.day)
                yield from self._read_lines(log_file, state, batch, recent, batch_size, final)
        except _IOFailed as failed:
            if not isinstance(failed.cause, FileNotFoundError):
                raise SourceError(
                    f"{self.settings.path}: cannot read {name}: {_describe(failed.cause)}"
                ) from failed.cause
            # Deleted since the listing (a lifecycle rule, a clean-up): what was read stands.
            log.warning("%s disappeared before it was read to its end", name)
            if state.files[name].offset == 0:
                del state.files[name]  # read it if it comes back

    def _read_lines(
        self,
        log_file: LogFile,
        state: SegmentBookmark,
        batch: _Batch,
        recent: _RecentIds,
        batch_size: int,
        final: bool,
    ) -> Iterator[SourceBatch]:
        position = state.files.setdefault(log_file.name, FilePosition(day=log_file.day))
        self.stats.files += 1
        stats, name, loads = self.stats, log_file.name, orjson.loads
        messages, rejects = batch.messages, batch.rejects
        room = batch_size - batch.size
        line_no, offset = position.lines, position.offset
        complete = True
        with self._open(log_file.path) as handle, gc_paused():
            guarded = _Guarded(handle)
            lines = read_lines(
                guarded, gzipped=log_file.gzipped, offset=offset, limit=log_file.size
            )
            try:
                for line, end, terminated in lines:
                    line_no += 1
                    try:
                        raw = loads(line)
                    except orjson.JSONDecodeError as exc:
                        if not terminated and not log_file.gzipped and not final:
                            line_no -= 1
                            complete = False  # a line still being written: read it next time
                            break
                        bad = _bad_line(name, line_no, line, terminated, exc)
                        if bad is None:  # a blank line: not a record
                            offset = end
                            continue
                        rejects.append(bad)
                    else:
                        try:
                            message = parse_message(raw, f"{name}:{line_no}")
                        except MessageError as exc:
                            rejects.append(_reject(name, line_no, line, exc.field, exc.reason))
                        else:
                            messages.append(message)
                            if recent.seen(message.message_id):
                                stats.duplicates += 1
                    offset = end
                    room -= 1
                    if room <= 0:
                        position.lines, position.offset = line_no, offset
                        with gc_resumed():
                            yield batch.flush(state, stats)
                        messages, rejects, room = batch.messages, batch.rejects, batch_size
            except zlib.error as exc:
                if self._grew(log_file):  # a copy still being written: the rest next time
                    complete = False
                else:
                    # A corrupt or truncated .gz must not stop every later run at this file:
                    # what was read stands, the rest is one rejected row, the file is read.
                    rejects.append(_unreadable(name, line_no, str(exc)))
            except _IOFailed:
                position.lines, position.offset = line_no, offset  # the lines in the batch
                raise
        position.lines, position.offset = line_no, offset
        if complete:
            position.complete_size = log_file.size


class _Batch:
    """The batch being filled; `flush` hands it out with the bookmark reached."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.rejects: list[RejectedRow] = []

    @property
    def size(self) -> int:
        return len(self.messages) + len(self.rejects)

    def flush(self, state: SegmentBookmark, stats: SourceStats) -> SourceBatch:
        stats.messages += len(self.messages)
        stats.rejects += len(self.rejects)
        stats.read += self.size
        out = SourceBatch(self.messages, self.rejects, state.dump(), self.size)
        self.messages, self.rejects = [], []
        return out
