"""Child process of the crash test: one sync run over a file, into a logging ESP.

Usage: python tests/sync/crash_child.py STATE_URL DATA_FILE ESP_LOG
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from sync import engine as engine_module
from sync.config import parse_config
from sync.engine import SyncEngine
from sync.store.state import StateStore
from tests.sync.fakes import LinesSource, LoggingEsp


def main() -> None:
    state_url, data, log = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    engine_module.build_source = lambda name, s, store=None: LinesSource(name, data)  # type: ignore[assignment]
    engine_module.build_destination = lambda name, s, t=None: LoggingEsp(name, log)  # type: ignore[assignment]
    config = parse_config(
        {
            "state": {"url": state_url},
            "sources": {"events": {"type": "segment", "path": str(data.parent)}},
            "destinations": {"esp": {"type": "klaviyo"}},
            "syncs": {"main": {"source": "events", "destinations": ["esp"], "batch_size": 7}},
        }
    )
    store = StateStore.open(state_url)
    # An expired lock left by a killed run is taken over; expire ours at once for the test.
    engine_module.LOCK_TTL = engine_module.timedelta(seconds=0.5)
    asyncio.run(SyncEngine(config, store).run_sync("main"))


if __name__ == "__main__":
    main()
