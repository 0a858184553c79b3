"""Kill -9 a run at random points: nothing acknowledged is sent again, nothing is lost."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from sync.store.state import StateStore
from tests.sync.fakes import track

CHILD = Path(__file__).with_name("crash_child.py")
EVENTS = 400


def _lines(log: Path) -> int:
    return log.read_bytes().count(b"\n")


def test_sigkill_at_random_points_loses_nothing_and_resends_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    data, log = tmp_path / "events.jsonl", tmp_path / "esp.log"
    data.write_bytes(b"\n".join(track(i) for i in range(EVENTS)) + b"\n")
    log.touch()
    url = f"sqlite:///{tmp_path}/state.db"
    rng = random.Random(7)
    kills: list[tuple[set[str], int]] = []  # (keys acknowledged at the kill, ESP log length then)
    for _attempt in range(40):
        start = _lines(log)
        # Kill once the ESP has applied a random number of new events, plus a random
        # sliver of time: the kill lands before, inside and after batch commits.
        target, extra = start + rng.randint(1, 40), rng.uniform(0.0, 0.05)
        child = subprocess.Popen([sys.executable, str(CHILD), url, str(data), str(log)])
        while child.poll() is None and _lines(log) < target:
            time.sleep(0.002)
        time.sleep(extra)
        if child.poll() is None:
            child.kill()
            child.wait()
            time.sleep(0.6)  # let the dead run's lock expire
            store = StateStore.open(url)
            acked = set(store.ledger_status("esp", [f"m{i}" for i in range(EVENTS)]))
            store.close()
            kills.append((acked, _lines(log)))
            continue
        assert child.returncode == 0
        break
    else:
        raise AssertionError("the run never completed")
    applied = log.read_text().split()
    assert set(applied) == {f"m{i}" for i in range(EVENTS)}, "an event was lost"
    assert kills, "no run was killed: make the timeouts shorter"
    for acked, position in kills:
        resent = acked & set(applied[position:])
        assert not resent, f"acknowledged keys sent again after a kill: {sorted(resent)[:5]}"
