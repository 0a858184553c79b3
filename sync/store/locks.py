"""Taking over a sync's lock from a process on this host that died holding it.

The engine's lock outlives a `kill -9` of its holder until its TTL (minutes); a
restarted `serve`, `run` or `schedule` must not wait that long. The holder is `host:pid:nonce`
(`sync.engine`); a holder on this host whose pid no longer exists is dead.
"""

from __future__ import annotations

import logging
import os
import socket

import sqlalchemy as sa

from sync.store import schema
from sync.store.state import StateStore

log = logging.getLogger("espbridge.ingest")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def release_dead_holder(store: StateStore, sync: str) -> bool:
    """Delete the lock of `sync` if its holder was a process of this host that is gone."""
    name = f"sync:{sync}"
    t = schema.locks
    with store.engine.connect() as conn:
        holder = conn.execute(sa.select(t.c.holder).where(t.c.name == name)).scalar()
    if not holder:
        return False
    host, _, rest = str(holder).partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
        return False
    with store.engine.begin() as conn:
        gone = conn.execute(sa.delete(t).where(t.c.name == name, t.c.holder == holder))
    if gone.rowcount:
        log.warning("sync %s: took over the lock of dead process %s", sync, holder)
    return bool(gone.rowcount)
