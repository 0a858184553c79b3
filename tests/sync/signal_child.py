"""Child process of the second-signal test: `espbridge schedule` or `serve` stuck in a read.

Usage: python tests/sync/signal_child.py CONFIG READY_FILE COMMAND [ARGS...]

The sync's source writes READY_FILE and then blocks for an hour, like a warehouse query
that will not end: a graceful stop cannot finish, only a second signal ends the process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2]))

import pytest
import sqlalchemy as sa

from sync import engine as engine_module
from sync.cli import app
from sync.config import load_config
from sync.store import schema
from sync.store.state import StateStore
from tests.sync.fakes import LinesSource, LoggingEsp


class StuckSource(LinesSource):
    def read(self, bookmark: Any, *, batch_size: int) -> Iterator[Any]:
        self.path.write_text("reading\n")
        time.sleep(3600)
        yield from ()


def _ran_an_hour_ago(config: Path) -> None:
    """A past run, so that `schedule` fires the sync at once (it missed its last tick)."""
    cfg = load_config(config)
    store = StateStore.open(cfg.state.url)
    for name in cfg.syncs:
        run = store.start_run(name)
        store.finish_run(run, "completed")
        with store.engine.begin() as conn:
            conn.execute(
                sa.update(schema.runs)
                .where(schema.runs.c.id == run)
                .values(started_at=datetime.now(UTC) - timedelta(hours=1))
            )
    store.close()


def main() -> None:
    config, ready_file, command, *rest = sys.argv[1:]
    ready = Path(ready_file)
    patch = pytest.MonkeyPatch()
    patch.setattr(
        engine_module, "build_source", lambda name, s, store=None: StuckSource(name, ready)
    )
    esp_log = ready.with_suffix(".esp")
    patch.setattr(
        engine_module, "build_destination", lambda name, s, t=None: LoggingEsp(name, esp_log)
    )
    if command == "schedule":
        _ran_an_hour_ago(Path(config))
    app([command, "--config", config, *rest], prog_name="espbridge")


if __name__ == "__main__":
    main()
