"""The segment source on Segment's S3 layout, served by moto on 127.0.0.1."""

from __future__ import annotations

import gzip

from connectors.segment.settings import SegmentSourceSettings
from connectors.segment.source import SegmentSource
from tests.connectors.segment.helpers import DAY, lines, read_all, track
from tests.fixtures.s3 import S3Layout


def _source(layout: S3Layout) -> SegmentSource:
    settings = SegmentSourceSettings(path=layout.path, storage_options=layout.storage_options)
    return SegmentSource(settings, name="s3")


def test_reads_the_s3_layout_fully_then_only_new_files(s3_segment_logs: S3Layout) -> None:
    layout = s3_segment_logs
    src = _source(layout)
    assert f"{len(layout.manifest['files'])} files" in src.check()
    first = read_all(src, None, batch_size=300)
    assert first.read == len(first.messages) + len(first.rejects) == layout.manifest["lines"]
    refs = {r.source_ref for r in first.rejects}
    assert refs == {m["ref"] for m in layout.manifest["samples"]["malformed"]}
    assert read_all(src, first.bookmark).messages == []

    newest = max(int(f.split("/")[0]) for f in layout.manifest["files"])
    bucket_key = layout.path.removeprefix("s3://segment-bucket/")
    client = layout.server.client()
    body = gzip.compress(lines(track(1, day=99), track(2, day=99)), mtime=0)
    client.put_object(Bucket="segment-bucket", Key=f"{bucket_key}/{newest}/late.gz", Body=body)
    body = gzip.compress(lines(track(3, day=99)), mtime=0)
    client.put_object(Bucket="segment-bucket", Key=f"{bucket_key}/{newest + DAY}/0.gz", Body=body)
    second = read_all(src, first.bookmark)  # the same source sees new objects
    assert [m.message_id for m in second.messages] == ["m-99-1", "m-99-2", "m-99-3"]
    assert second.messages[0].source_ref == f"{newest}/late.gz:1"
