"""The segment source on local files: full and incremental reads, rejects, bookmark size."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.base import Source
from connectors.sample import generate
from connectors.segment.source import SourceError
from tests.connectors.segment.helpers import lines, read_all, source, track, write_day_file


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("sample")
    manifest = generate(out, events=3000, seed=5)
    return out / manifest["source_path"], manifest


def test_full_read_counts_every_line(sample: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = sample
    src = source(root)
    assert isinstance(src, Source)
    result = read_all(src, None, batch_size=250)
    assert result.read == len(result.messages) + len(result.rejects) == manifest["lines"]
    assert len(result.rejects) == manifest["counts"]["malformed"]
    assert result.largest <= 250
    assert src.stats.duplicates >= manifest["counts"]["duplicates"]
    ids = Counter(m.message_id for m in result.messages)
    assert ids[manifest["planted"]["duplicate_message_id"]] == 2  # passed through, counted
    assert src.stats.read == manifest["lines"]


def test_malformed_lines_name_file_line_and_field(sample: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = sample
    result = read_all(source(root), None)
    found = {r.source_ref: r for r in result.rejects}
    expected_field = {
        "bad_json": "$",
        "missing_message_id": "messageId",
        "bad_timestamp": "timestamp",
    }
    for planted in manifest["samples"]["malformed"]:
        reject = found[planted["ref"]]
        assert reject.field == expected_field[planted["kind"]]
        assert reject.stage == "source"
        assert reject.reason
        assert reject.payload["line"].startswith("{")
        file, line = planted["ref"].rsplit(":", 1)
        with gzip.open(root / file, "rt") as handle:
            text = handle.read().splitlines()[int(line) - 1]
        assert reject.payload["line"] == text[:2048]


def test_second_read_reads_nothing_new(sample: tuple[Path, dict[str, Any]]) -> None:
    root, _ = sample
    src = source(root)
    first = read_all(src, None)
    again = read_all(src, first.bookmark)
    assert again.messages == [] and again.rejects == []
    assert again.batches == 0  # nothing changed: no batch at all


def test_resume_mid_gz_file_reads_each_line_once(sample: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = sample
    src = source(root)
    refs: list[str] = []
    bookmark = None
    while True:  # one batch per run, as a crash after every batch would do
        batch = next(iter(src.read(bookmark, batch_size=97)), None)
        if batch is None:
            break
        refs += [m.source_ref for m in batch.messages] + [r.source_ref for r in batch.rejects]
        if batch.bookmark == bookmark:
            break
        bookmark = batch.bookmark
    assert len(refs) == len(set(refs)) == manifest["lines"]


def test_new_files_and_late_files_are_read_once(tmp_path: Path) -> None:
    write_day_file(tmp_path, 0, "a.gz", lines(track(1), track(2)))
    write_day_file(tmp_path, 1, "a.gz", lines(track(3, day=1)))
    src = source(tmp_path)
    first = read_all(src, None)
    assert [m.message_id for m in first.messages] == ["m-0-1", "m-0-2", "m-1-3"]
    write_day_file(tmp_path, 0, "b.gz", lines(track(4)))  # late file in an older day
    write_day_file(tmp_path, 2, "a.gz", lines(track(5, day=2)))  # a new day
    second = read_all(src, first.bookmark)
    assert [m.message_id for m in second.messages] == ["m-0-4", "m-2-5"]
    assert read_all(src, second.bookmark).messages == []


def test_bookmark_stays_small_with_many_days(tmp_path: Path) -> None:
    for day in range(60):
        for n in range(3):
            write_day_file(tmp_path, day, f"{n}.gz", lines(track(n, day=day)))
    src = source(tmp_path, late_days=2)
    result = read_all(src, None, batch_size=50)
    assert len(result.messages) == 180  # a first read still reads every day
    assert result.bookmark is not None
    assert len(result.bookmark["files"]) == 9  # only the open days: 57, 58, 59
    assert len(orjson.dumps(result.bookmark)) < 2000
    write_day_file(tmp_path, 10, "late.gz", lines(track(9, day=10)))  # sealed day: ignored
    write_day_file(tmp_path, 58, "late.gz", lines(track(9, day=58)))  # open day: read
    again = read_all(src, result.bookmark)
    assert [m.message_id for m in again.messages] == ["m-58-9"]


def test_growing_file_resumes_at_offset(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(lines(track(1), track(2)))
    src = source(tmp_path)
    first = read_all(src, None)
    assert len(first.messages) == 2
    half = orjson.dumps(track(4))
    with path.open("ab") as handle:
        handle.write(lines(track(3)) + half[:20])  # a line still being written
    second = read_all(src, first.bookmark)
    assert [m.message_id for m in second.messages] == ["m-0-3"]
    assert second.rejects == []
    with path.open("ab") as handle:
        handle.write(half[20:] + b"\n")
    third = read_all(src, second.bookmark)
    assert [m.message_id for m in third.messages] == ["m-0-4"]
    assert third.messages[0].source_ref == "events.jsonl:4"


def test_last_line_without_newline_is_read_when_complete(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(lines(track(1)) + orjson.dumps(track(2)))
    src = source(tmp_path)
    first = read_all(src, None)
    assert len(first.messages) == 2
    with (tmp_path / "a.json").open("ab") as handle:
        handle.write(b"\n" + lines(track(3)))
    assert [m.message_id for m in read_all(src, first.bookmark).messages] == ["m-0-3"]


def test_data_appended_during_a_read_waits_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(lines(*[track(n) for n in range(10)]))
    src = source(tmp_path)
    batches = src.read(None, batch_size=4)
    first = next(batches)
    with path.open("ab") as handle:  # arrives mid-run: after the signpost
        handle.write(lines(track(100)))
    (tmp_path / "new.ndjson").write_bytes(lines(track(200)))
    rest = list(batches)
    seen = [m.message_id for b in [first, *rest] for m in b.messages]
    assert seen == [f"m-0-{n}" for n in range(10)]
    after = read_all(src, rest[-1].bookmark)
    assert sorted(m.message_id for m in after.messages) == ["m-0-100", "m-0-200"]


def test_plain_and_compressed_extensions(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(lines(track(1)))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(lines(track(2))))
    (tmp_path / "c.ndjson").write_bytes(lines(track(3)))
    (tmp_path / "d.gz").write_bytes(gzip.compress(lines(track(4))) + gzip.compress(lines(track(5))))
    (tmp_path / "dummy-object.txt").write_bytes(b"not a log")
    result = read_all(source(tmp_path), None)
    assert sorted(m.message_id for m in result.messages) == [f"m-0-{n}" for n in range(1, 6)]


def test_each_kind_of_bad_line_is_rejected_and_the_read_goes_on(tmp_path: Path) -> None:
    bad = [
        b"{not json",
        b"[1, 2]",
        orjson.dumps({**track(1), "type": "purchase"}),
        orjson.dumps({k: v for k, v in track(2).items() if k != "messageId"}),
        orjson.dumps({**track(3), "timestamp": "yesterday"}),
        orjson.dumps({**track(4), "event": ""}),
        orjson.dumps({**track(5), "properties": [1]}),
        orjson.dumps({k: v for k, v in track(6).items() if k != "userId"}),
        b"   ",
        b"x" * 5000,
    ]
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(bad) + b"\n" + lines(track(7)))
    result = read_all(source(tmp_path), None)
    assert [m.message_id for m in result.messages] == ["m-0-7"]
    fields = [(r.source_ref, r.field) for r in result.rejects]
    assert fields == [
        ("bad.jsonl:1", "$"),
        ("bad.jsonl:2", "$"),
        ("bad.jsonl:3", "type"),
        ("bad.jsonl:4", "messageId"),
        ("bad.jsonl:5", "timestamp"),
        ("bad.jsonl:6", "event"),
        ("bad.jsonl:7", "properties"),
        ("bad.jsonl:8", "userId"),
        ("bad.jsonl:10", "$"),
    ]
    assert len(result.rejects[-1].payload["line"]) == 2048
    assert result.read == 10  # the blank line is not a record


def test_a_blank_message_id_is_a_reject_not_a_duplicate_of_the_next(tmp_path: Path) -> None:
    # " " was accepted, and as the sent-ledger's key every later message with the same
    # blank id was taken for a copy of the first: a different message, dropped as sent.
    blank = [{**track(n), "messageId": v} for n, v in enumerate([" ", "\t\n", "\u200b\u3000"])]
    (tmp_path / "a.jsonl").write_bytes(lines(*blank, track(9)))
    result = read_all(source(tmp_path), None)
    assert [m.message_id for m in result.messages] == ["m-0-9"]
    assert [(r.source_ref, r.field) for r in result.rejects] == [
        (f"a.jsonl:{n}", "messageId") for n in (1, 2, 3)
    ]
    assert all("blank" in r.reason for r in result.rejects)


def test_check_describes_the_folder(sample: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = sample
    text = source(root).check()
    assert f"{len(manifest['files'])} files" in text


def test_missing_folder_and_missing_gcsfs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such folder"):
        source(tmp_path / "nope").check()
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="gcsfs"):
            source("gs://bucket/segment-logs/abc")


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(lines(track(1), track(2), track(3)))
    src = source(tmp_path)
    first = read_all(src, None)
    path.write_bytes(lines(track(9)))  # rotated: a new, shorter file under the same name
    assert [m.message_id for m in read_all(src, first.bookmark).messages] == ["m-0-9"]


def test_storage_credentials_stay_out_of_repr() -> None:
    from connectors.segment.settings import SegmentSourceSettings

    settings = SegmentSourceSettings(path="s3://b/p", storage_options={"secret": "s3cr3t"})
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings)


def test_a_gz_still_being_copied_in_is_read_on_next_time_without_a_reject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listed while half written (a local `cp` in progress): its early end was a rejected
    # row ("truncated"), for a file that was fine a moment later.
    whole = gzip.compress(lines(*(track(n) for n in range(400))), mtime=0)
    target = tmp_path / "a.gz"
    target.write_bytes(whole[: len(whole) // 2])
    src = source(tmp_path)
    listed = src.list_files

    def list_then_finish_copy(*args: Any, **kwargs: Any) -> Any:
        listing = listed(*args, **kwargs)
        target.write_bytes(whole)  # the copy completes after the listing
        return listing

    monkeypatch.setattr(src, "list_files", list_then_finish_copy)
    first = read_all(src, None, batch_size=50)
    monkeypatch.setattr(src, "list_files", listed)
    second = read_all(src, first.bookmark)

    assert first.rejects == [] and second.rejects == []
    ids = [m.message_id for m in first.messages + second.messages]
    assert ids == [f"m-0-{n}" for n in range(400)]


def test_corrupt_or_truncated_gz_is_a_reject_and_the_next_files_are_read(tmp_path: Path) -> None:
    whole = gzip.compress(lines(*(track(n) for n in range(400))), mtime=0)
    (tmp_path / "a.gz").write_bytes(whole[: len(whole) // 2])  # an upload cut short
    (tmp_path / "b.gz").write_bytes(b"<Error>AccessDenied</Error>")  # not gzip at all
    (tmp_path / "c.gz").write_bytes(gzip.compress(lines(track(1000)), mtime=0))
    src = source(tmp_path)
    result = read_all(src, None, batch_size=50)
    ids = [m.message_id for m in result.messages]
    cut = len(ids) - 1  # lines read from a.gz: every one before the cut, in order
    assert 0 < cut < 399 and ids == [f"m-0-{n}" for n in range(cut)] + ["m-0-1000"]
    first, second = result.rejects
    assert first.source_ref == f"a.gz:{cut + 1}" and first.field is None
    assert "truncated" in first.reason and first.stage == "source"
    assert second.source_ref == "b.gz:1" and "unreadable gzip data" in second.reason
    assert result.read == len(ids) + 2 == src.stats.read
    # Each file counts as read: the next run neither stops at them nor rejects them again.
    again = read_all(src, result.bookmark)
    assert again.messages == [] and again.rejects == []
