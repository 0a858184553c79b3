"""The segment source on Segment's S3 layout, served by moto on 127.0.0.1."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.segment.settings import SegmentSourceSettings
from connectors.segment.source import SegmentSource, SourceError
from tests.connectors.segment.helpers import DAY, DAY0, lines, read_all, track
from tests.fixtures.s3 import S3Layout, S3Server


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


class _ListOnly(BaseHTTPRequestHandler):
    """An S3 endpoint whose credentials may list the bucket but not read its objects."""

    LISTING = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Name>bkt</Name><Prefix>logs/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
        "<IsTruncated>false</IsTruncated><Contents><Key>logs/1767225600000/a.gz</Key>"
        "<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag>"
        "<Size>40</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>"
    )

    def do_GET(self) -> None:
        if "list-type=2" in self.path:
            self._answer(200, self.LISTING.encode())
        else:
            self._answer(
                403, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            )

    def do_HEAD(self) -> None:
        self._answer(403, b"")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def list_only_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ListOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _options(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "never-shown-secret",
        "client_kwargs": {"region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}},
        "skip_instance_cache": True,
        **extra,
    }


def test_objects_that_cannot_be_read_stop_the_run_naming_the_file(list_only_endpoint: str) -> None:
    src = SegmentSource(
        SegmentSourceSettings(path="s3://bkt/logs", storage_options=_options(list_only_endpoint))
    )
    assert "1 files" in src.check()  # listing is allowed
    with pytest.raises(SourceError) as caught:  # exit code 3, not a traceback
        read_all(src, None)
    text = str(caught.value)
    assert "1767225600000/a.gz" in text and "Access Denied" in text
    assert "never-shown-secret" not in text


def test_an_unreachable_endpoint_is_a_source_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = SegmentSourceSettings(
        path="s3://bkt/logs", storage_options=_options(f"http://127.0.0.1:{port}")
    )
    with pytest.raises(SourceError, match="s3://bkt/logs: cannot list") as caught:
        SegmentSource(settings).check()
    assert "never-shown-secret" not in str(caught.value)


def test_a_misspelt_storage_option_is_a_source_error(s3_server: S3Server) -> None:
    options = {**s3_server.storage_options, "endpoint": s3_server.endpoint_url}
    settings = SegmentSourceSettings(path="s3://segment-bucket/x", storage_options=options)
    with pytest.raises(SourceError, match="storage_options") as caught:
        SegmentSource(settings).check()
    assert "endpoint" in str(caught.value)


def test_an_object_deleted_after_the_listing_is_skipped(s3_server: S3Server) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket="vanishing")
    for n in range(3):
        body = gzip.compress(lines(track(n)), mtime=0)
        client.put_object(Bucket="vanishing", Key=f"logs/1767225600000/{n}.gz", Body=body)
    settings = SegmentSourceSettings(
        path="s3://vanishing/logs", storage_options=s3_server.storage_options
    )
    batches = SegmentSource(settings).read(None, batch_size=1)
    first = next(batches)
    client.delete_object(Bucket="vanishing", Key="logs/1767225600000/1.gz")  # a lifecycle rule
    rest = list(batches)
    assert [m.message_id for b in [first, *rest] for m in b.messages] == ["m-0-0", "m-0-2"]


def test_more_than_a_thousand_keys_are_all_listed(s3_server: S3Server) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket="many")
    body = gzip.compress(lines(track(0)), mtime=0)
    for n in range(1005):  # S3 lists 1,000 keys per page
        client.put_object(Bucket="many", Key=f"logs/1767225600000/{n:05d}.gz", Body=body)
    settings = SegmentSourceSettings(
        path="s3://many/logs", storage_options=s3_server.storage_options
    )
    assert "1005 files" in SegmentSource(settings).check()


def test_sealed_day_folders_are_not_listed_again(
    s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket="history")
    for day in range(30):  # a bucket keeps every day Segment ever wrote
        body = gzip.compress(lines(track(day, day=day)), mtime=0)
        client.put_object(Bucket="history", Key=f"logs/{DAY0 + day * DAY}/0.gz", Body=body)
    settings = SegmentSourceSettings(
        path="s3://history/logs", storage_options=s3_server.storage_options, late_days=2
    )
    src = SegmentSource(settings)
    first = read_all(src, None)
    assert len(first.messages) == 30
    body = gzip.compress(lines(track(99, day=29)), mtime=0)
    client.put_object(Bucket="history", Key=f"logs/{DAY0 + 29 * DAY}/1.gz", Body=body)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        second = read_all(src, first.bookmark)
    assert [m.message_id for m in second.messages] == ["m-29-99"]
    listed = [
        parse_qs(urlsplit(record.getMessage().split()[6]).query, keep_blank_values=True)
        for record in caplog.records
        if "list-type=2" in record.getMessage()
    ]
    # The listing cost stays that of the open days, however long the history is.
    prefixes = sorted(query["prefix"][0] for query in listed)
    assert prefixes == ["logs/", *(f"logs/{DAY0 + day * DAY}/" for day in (27, 28, 29))]
