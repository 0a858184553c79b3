"""`serve` in a child process for the kill -9 test: `python -m tests.sync.ingest.serve_child`."""

from __future__ import annotations

import sys

from sync.ingest.serve import serve
from sync.ingest.settings import IngestSettings
from tests.sync.ingest.helpers import WRITE_KEY, inbox_config


def main(state_url: str, klaviyo_url: str, port: str) -> None:
    config = inbox_config(state_url, klaviyo_url)
    serve(config, "127.0.0.1", int(port), settings=IngestSettings(write_keys=[WRITE_KEY]))


if __name__ == "__main__":
    main(*sys.argv[1:])
