"""Writing lines into Segment's S3 layout: `segment-logs/<source-id>/<day-ms>/<n>.gz`.

Each received day has its own file sequence; a file rolls over after `lines_per_file`
lines. gzip headers carry no name or time, so the bytes depend only on the content.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

from connectors.sample.catalog import DAY_MS

LATE_DAYS_MAX = 4


class _DayFile:
    def __init__(self, folder: Path, number: int) -> None:
        self.name = f"{number:04d}.gz"
        self.number = number
        self.lines = 0
        self._raw: BinaryIO = (folder / self.name).open("wb")
        self.gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=1, mtime=0)

    def close(self) -> None:
        self.gz.close()
        self._raw.close()


class SegmentLayoutWriter:
    """Routes each line to the file of its received day.

    Args:
        root: The output folder; files go under `root/segment-logs/<source_id>/`.
        source_id: Segment source id used in the path.
        lines_per_file: Lines before a day's file rolls over.
    """

    def __init__(self, root: Path, source_id: str, lines_per_file: int = 50_000) -> None:
        self.base = root / "segment-logs" / source_id
        self.lines_per_file = lines_per_file
        self.files: list[str] = []
        self._open: dict[int, _DayFile] = {}
        self._next_number: dict[int, int] = {}

    def write(self, line: bytes, received_ms: int) -> str:
        """Append one line (without newline); return its `source_ref` (`<file>:<line>`)."""
        day = received_ms // DAY_MS * DAY_MS
        current = self._open.get(day)
        if current is None or current.lines >= self.lines_per_file:
            if current is not None:
                current.close()
            current = self._start(day)
        current.gz.write(line + b"\n")
        current.lines += 1
        return f"{day}/{current.name}:{current.lines}"

    def _start(self, day: int) -> _DayFile:
        folder = self.base / str(day)
        folder.mkdir(parents=True, exist_ok=True)
        number = self._next_number.get(day, 0)
        self._next_number[day] = number + 1
        day_file = _DayFile(folder, number)
        self._open[day] = day_file
        self.files.append(f"{day}/{day_file.name}")
        return day_file

    def close_before(self, clock_ms: int) -> None:
        """Close the files of days no late event can reach any more (bounded open files)."""
        horizon = clock_ms - LATE_DAYS_MAX * DAY_MS
        for day in [d for d in self._open if d + DAY_MS < horizon]:
            self._open.pop(day).close()

    def close(self) -> None:
        """Close every open file."""
        for day_file in self._open.values():
            day_file.close()
        self._open.clear()
