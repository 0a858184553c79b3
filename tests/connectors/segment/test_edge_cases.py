"""The segment source against awkward files: BOMs, vanishing files, bad last lines, secrets."""

from __future__ import annotations

import gzip
import logging
import os
import time
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from connectors.segment.settings import SegmentSourceSettings
from sync.config import secret_values
from tests.connectors.segment.helpers import DAY, DAY0, lines, read_all, source, track


def test_a_utf8_bom_at_the_start_of_a_file_is_not_a_reject(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"  # Windows tools write one at the start of "UTF-8" files
    (tmp_path / "a.jsonl").write_bytes(bom + lines(track(1), track(2)))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(bom + lines(track(3)), mtime=0))
    (tmp_path / "c.jsonl").write_bytes(lines(track(4)) + bom + lines(track(5)))
    result = read_all(source(tmp_path), None)
    assert [m.message_id for m in result.messages] == ["m-0-1", "m-0-2", "m-0-3", "m-0-4"]
    assert [m.source_ref for m in result.messages[:2]] == ["a.jsonl:1", "a.jsonl:2"]
    # Only at the start of a file: a BOM inside is damage, reported as such.
    assert [(r.source_ref, r.field) for r in result.rejects] == [("c.jsonl:2", "$")]


def test_a_file_deleted_after_the_listing_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):
        (tmp_path / f"{n}.jsonl").write_bytes(lines(track(n)))
    src = source(tmp_path)
    batches = src.read(None, batch_size=1)
    first = next(batches)
    (tmp_path / "1.jsonl").unlink()  # e.g. a lifecycle rule or a clean-up job
    with caplog.at_level(logging.WARNING):
        rest = list(batches)
    seen = [m.message_id for b in [first, *rest] for m in b.messages]
    assert seen == ["m-0-0", "m-0-2"]
    assert "1.jsonl" in caplog.text and "disappeared" in caplog.text
    (tmp_path / "1.jsonl").write_bytes(lines(track(7)))  # it comes back: it is read
    again = read_all(src, rest[-1].bookmark)
    assert [m.message_id for m in again.messages] == ["m-0-7"]


def _day_file(root: Path, day: int, name: str, data: bytes) -> Path:
    folder = root / str(DAY0 + day * DAY)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_a_bad_last_line_without_newline_is_rejected_when_its_day_is_sealed(
    tmp_path: Path,
) -> None:
    _day_file(tmp_path, 0, "a.jsonl", lines(track(1)) + b'{"type": "track", "ev')
    src = source(tmp_path, late_days=2)
    first = read_all(src, None)
    # It may still be being written: left for later, not rejected yet.
    assert [m.message_id for m in first.messages] == ["m-0-1"] and first.rejects == []
    _day_file(tmp_path, 5, "b.jsonl", lines(track(2, day=5)))  # day 0 is now sealed
    second = read_all(src, first.bookmark)
    assert [m.message_id for m in second.messages] == ["m-5-2"]
    (reject,) = second.rejects  # never dropped silently with its day
    assert reject.source_ref == f"{DAY0}/a.jsonl:2" and reject.field == "$"
    assert "no newline" in reject.reason
    assert reject.payload["line"] == '{"type": "track", "ev'
    assert second.bookmark is not None and list(second.bookmark["files"]) == [
        f"{DAY0 + 5 * DAY}/b.jsonl"
    ]
    assert read_all(src, second.bookmark).rejects == []


def test_a_first_read_of_an_old_day_rejects_its_unfinished_last_line(tmp_path: Path) -> None:
    _day_file(tmp_path, 0, "a.jsonl", lines(track(1)) + b"{oops")
    _day_file(tmp_path, 9, "b.jsonl", lines(track(2, day=9)))
    result = read_all(source(tmp_path, late_days=2), None)
    assert [m.message_id for m in result.messages] == ["m-0-1", "m-9-2"]
    assert [r.source_ref for r in result.rejects] == [f"{DAY0}/a.jsonl:2"]


def test_a_truncated_gz_rewritten_whole_under_its_name_is_read_on(tmp_path: Path) -> None:
    whole = gzip.compress(lines(*(track(n) for n in range(300))), mtime=0)
    path = tmp_path / "a.gz"
    path.write_bytes(whole[: len(whole) // 2])
    src = source(tmp_path)
    first = read_all(src, None)
    cut = len(first.messages)
    assert [r.source_ref for r in first.rejects] == [f"a.gz:{cut + 1}"]
    assert read_all(src, first.bookmark).batches == 0  # not reported again while unchanged
    path.write_bytes(whole)  # uploaded again, complete
    second = read_all(src, first.bookmark)
    assert [m.message_id for m in second.messages] == [f"m-0-{n}" for n in range(cut, 300)]
    assert second.messages[0].source_ref == f"a.gz:{cut + 1}" and second.rejects == []


def test_same_file_names_in_different_folders_are_different_files(tmp_path: Path) -> None:
    for folder, n in (("x", 1), ("y", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "0.jsonl").write_bytes(lines(track(n)))
    src = source(tmp_path)
    first = read_all(src, None)
    assert sorted(m.source_ref for m in first.messages) == ["x/0.jsonl:1", "y/0.jsonl:1"]
    with (tmp_path / "y" / "0.jsonl").open("ab") as handle:
        handle.write(lines(track(3)))
    assert [m.source_ref for m in read_all(src, first.bookmark).messages] == ["y/0.jsonl:2"]


def test_storage_secrets_are_secret_values_of_the_config() -> None:
    settings = SegmentSourceSettings(
        path="s3://b/p",
        storage_options={
            "key": "AKIAEXAMPLE",
            "secret": "s3cr3t-value",
            "client_kwargs": {"aws_session_token": "t0ken-value", "region_name": "eu-west-1"},
        },
    )
    # What `espbridge` masks in errors, logs and run records.
    assert secret_values(settings) == {"s3cr3t-value", "t0ken-value"}
    assert isinstance(settings.storage_options["secret"], SecretStr)
    dumped = orjson.dumps(settings.model_dump(mode="json")).decode()
    assert "s3cr3t-value" not in dumped and "t0ken-value" not in dumped
    assert settings.fs_options()["secret"] == "s3cr3t-value"  # what fsspec is given
    assert settings.fs_options()["client_kwargs"]["aws_session_token"] == "t0ken-value"
    assert settings.fs_options()["key"] == "AKIAEXAMPLE"


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_a_file_rewritten_with_other_content_is_read_again_from_its_start(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    def write(data: bytes) -> None:
        (tmp_path / name).write_bytes(gzip.compress(data, mtime=0) if name.endswith("gz") else data)

    write(lines(track(1), track(2), track(3)))
    src = source(tmp_path)
    first = read_all(src, None)
    # Rotated (logrotate's copytruncate) and longer by the next read: same name, new lines.
    write(lines(*(track(n) for n in range(10, 20))))
    with caplog.at_level(logging.WARNING):
        second = read_all(src, first.bookmark)
    assert [m.message_id for m in second.messages] == [f"m-0-{n}" for n in range(10, 20)]
    assert second.rejects == [] and second.messages[0].source_ref == f"{name}:1"
    assert name in caplog.text and "rewritten" in caplog.text


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_an_enormous_line_is_rejected_and_the_read_goes_on(tmp_path: Path, name: str) -> None:
    # A whole JSON array on one line (an export, not NDJSON), and a 20 MB "message":
    # Segment refuses messages over 32 KB, and no ESP takes such a payload.
    array = orjson.dumps([track(n) for n in range(150_000)])
    huge = orjson.dumps({**track(3), "properties": {"blob": "x" * (20 << 20)}})
    data = lines(track(1)) + array + b"\n" + lines(track(2)) + huge + b"\n" + lines(track(4))
    (tmp_path / name).write_bytes(gzip.compress(data, 1) if name.endswith("gz") else data)
    result = read_all(source(tmp_path), None)
    assert [m.message_id for m in result.messages] == ["m-0-1", "m-0-2", "m-0-4"]
    assert [(r.source_ref, r.field) for r in result.rejects] == [
        (f"{name}:2", "$"),
        (f"{name}:4", "$"),
    ]
    for reject, size in zip(result.rejects, (len(array), len(huge)), strict=True):
        assert f"{size:,} bytes" in reject.reason and "longer than" in reject.reason
    assert result.rejects[0].payload["line"] == array[:2048].decode()
    assert result.read == 5


def test_a_file_dated_in_the_future_does_not_seal_the_present(tmp_path: Path) -> None:
    (tmp_path / "today.jsonl").write_bytes(lines(track(1)))
    future = tmp_path / "future.jsonl"  # a wrong clock, or `touch -d` with a typo
    future.write_bytes(lines(track(2)))
    year_2099 = 4_070_908_800
    os.utime(future, (year_2099, year_2099))
    src = source(tmp_path)
    first = read_all(src, None)
    assert sorted(m.message_id for m in first.messages) == ["m-0-1", "m-0-2"]
    with (tmp_path / "today.jsonl").open("ab") as handle:
        handle.write(lines(track(3)))
    (tmp_path / "new.jsonl").write_bytes(lines(track(4)))
    second = read_all(src, first.bookmark)
    assert sorted(m.message_id for m in second.messages) == ["m-0-3", "m-0-4"]


def test_a_day_folder_from_the_future_does_not_seal_the_present(tmp_path: Path) -> None:
    today = int(time.time() * 1000) // DAY * DAY
    _day_file(tmp_path, (today - DAY0) // DAY, "a.jsonl", lines(track(1)))
    _day_file(tmp_path, (today - DAY0) // DAY + 9000, "x.jsonl", lines(track(2)))
    src = source(tmp_path)
    first = read_all(src, None)
    _day_file(tmp_path, (today - DAY0) // DAY, "b.jsonl", lines(track(3)))
    assert [m.message_id for m in read_all(src, first.bookmark).messages] == ["m-0-3"]
