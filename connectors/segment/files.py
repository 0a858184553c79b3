"""Listing Segment log files and the small bookmark that says how far each was read.

Segment's S3 destination writes immutable gzipped NDJSON files into one folder per
received day: ``segment-logs/<source-id>/<day-epoch-ms>/<file>.gz``. A file for the
last hour of a day is uploaded after midnight, so a day folder keeps growing for a while
after the next one appears ("late files").

The bookmark therefore has two parts:

* ``sealed_before``: a day (epoch ms). Day folders older than that are finished: they are
  neither read nor kept in the bookmark. It trails the newest day folder seen (today at
  most) by ``late_days`` days, so late files are still read while their day is open.
  Sealed day folders directly under the root are not even listed.
* ``files``: for each file in an open day, ``[lines, offset, complete_size, day]``: lines
  consumed, the byte offset after them (in the decompressed stream for .gz files), the
  file size at which it was read to its end (-1 while it is not), and its day. A file
  whose listed size equals ``complete_size`` is skipped; a file that grew is resumed at
  ``offset``.

Days are read oldest first, and a day is sealed only once all its listed files have
been read, so a first read (or a read after a long pause) still reads every day.

Its size is bounded by the files of ``late_days + 1`` days, however many days exist.
Files outside the day layout (a plain folder) are put in the day of their modification
time, which seals old, untouched files the same way.

The listing taken when a read starts (names and sizes) is the signpost: bytes appended
or files added during the read are left for the next read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import Bookmark

DAY_MS = 86_400_000
SUFFIXES = (".json", ".jsonl", ".ndjson")
DAY_FOLDER = re.compile(r"^\d{13}$")
BOOKMARK_VERSION = 1


@dataclass(frozen=True, slots=True)
class LogFile:
    """One file of the listing taken at the start of a read (the signpost).

    Attributes:
        path: Full path for fsspec.
        name: Path relative to the configured root (the bookmark key, `source_ref` prefix).
        size: Size in bytes when listed; the read stops there.
        day: The day partition in epoch ms, or None when unknown.
    """

    path: str
    name: str
    size: int
    day: int | None

    @property
    def gzipped(self) -> bool:
        """True for .gz files."""
        return self.name.endswith(".gz")


def is_log_file(name: str) -> bool:
    """True for .json/.jsonl/.ndjson and .gz files (Segment names its files `<id>.gz`)."""
    return name.endswith(SUFFIXES) or name.endswith(".gz")


def _modified_day(info: dict[str, Any]) -> int | None:
    modified = info.get("mtime", info.get("LastModified", info.get("updated")))
    if isinstance(modified, str):
        try:
            modified = datetime.fromisoformat(modified)
        except ValueError:
            return None
    if isinstance(modified, datetime):
        modified = modified.timestamp()
    if isinstance(modified, int | float):
        return int(modified * 1000) // DAY_MS * DAY_MS
    return None


def day_of(name: str, info: dict[str, Any]) -> int | None:
    """The day partition of a file: its Segment day folder, else its modification day."""
    for part in name.split("/")[:-1]:
        if DAY_FOLDER.match(part):
            return int(part)
    return _modified_day(info)


@dataclass(slots=True)
class FilePosition:
    """How far one file was read."""

    lines: int = 0
    offset: int = 0
    complete_size: int = -1
    day: int | None = None

    def to_json(self) -> list[int | None]:
        """The compact bookmark form."""
        return [self.lines, self.offset, self.complete_size, self.day]


@dataclass(slots=True)
class SegmentBookmark:
    """The parsed bookmark of the segment source (see the module docstring)."""

    sealed_before: int | None
    files: dict[str, FilePosition]

    @classmethod
    def load(cls, bookmark: Bookmark | None) -> SegmentBookmark:
        """Parse a stored bookmark; None or {} starts from the beginning."""
        if not bookmark:
            return cls(sealed_before=None, files={})
        if bookmark.get("v") != BOOKMARK_VERSION:
            raise ValueError(f"segment bookmark: unknown version {bookmark.get('v')!r}")
        files = {
            name: FilePosition(int(pos[0]), int(pos[1]), int(pos[2]), pos[3])
            for name, pos in bookmark.get("files", {}).items()
        }
        sealed = bookmark.get("sealed_before")
        return cls(sealed_before=int(sealed) if sealed is not None else None, files=files)

    def dump(self) -> Bookmark:
        """A JSON-able copy, safe to keep while reading continues."""
        return {
            "v": BOOKMARK_VERSION,
            "sealed_before": self.sealed_before,
            "files": {name: pos.to_json() for name, pos in self.files.items()},
        }

    def open_files(self, listing: list[LogFile]) -> list[LogFile]:
        """The listed files not in sealed days, oldest day first."""
        sealed = self.sealed_before
        found = [f for f in listing if sealed is None or f.day is None or f.day >= sealed]
        found.sort(key=lambda f: (-1 if f.day is None else f.day, f.name))
        return found

    def seal(self, before: int) -> None:
        """Seal the days before `before` (all their files are read): drop their entries.

        Call it only once every listed file of those days has been read; the bookmark
        then stays bounded by the files of the open days.
        """
        if self.sealed_before is not None and before <= self.sealed_before:
            return
        self.sealed_before = before
        for name, position in list(self.files.items()):
            if position.day is not None and position.day < before:
                del self.files[name]


def seal_target(listing: list[LogFile], late_days: int, now_ms: int) -> int | None:
    """The day before which everything is sealed once read: newest day - `late_days`.

    The newest day counts as today at most: one file or folder dated in the future (a
    wrong clock, a typo in `touch -d`) would otherwise seal every day up to it, and
    nothing arriving in the present would ever be read.
    """
    days = [f.day for f in listing if f.day is not None]
    if not days:
        return None
    return min(max(days), now_ms // DAY_MS * DAY_MS) - late_days * DAY_MS
