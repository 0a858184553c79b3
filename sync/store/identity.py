"""Tables of the identity graph (on `sync.store.schema.metadata`).

- `identity_identifiers`: every identifier ever seen → its customer (the graph's edges,
  collapsed to components). Looked up per batch by (kind, value); never loaded whole.
- `identity_customers`: one row per live customer, with its latest traits.
- `identity_merges`: merge history: a customer id that stopped existing, and where it went.
- `identity_conflicts`: merges a limit refused, with both sides (one row per distinct
  conflict, however often it recurs).
- `identity_lock`: one row that serializes writers (two syncs resolving at once would
  otherwise each merge against a graph the other is changing).

Below the tables: loading the part of the graph a batch touches, and writing back what
changed (used by `sync.identity.IdentityResolver`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mapping.identity import Conflict, IdentityGraph, Seen
from mapping.identity.graph import Component, epoch_us
from mapping.identity.identifiers import Identifier
from sync.store.identity_cache import CachedCustomer, GraphCache
from sync.store.schema import Timestamp, metadata

if TYPE_CHECKING:
    from sync.store.state import StateStore

identity_identifiers = sa.Table(
    "identity_identifiers",
    metadata,
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(512), primary_key=True),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    # Event times as epoch microseconds: compact, and cheap to read and write in bulk.
    sa.Column("first_seen_us", sa.BigInteger, nullable=False),
    sa.Column("last_seen_us", sa.BigInteger, nullable=False),
)

identity_customers = sa.Table(
    "identity_customers",
    metadata,
    sa.Column("customer_id", sa.String(40), primary_key=True),
    # JSON text written and read with orjson (the hot path of every batch).
    sa.Column("traits", sa.Text, nullable=False),
    sa.Column("trait_stamps", sa.Text, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

identity_merges = sa.Table(
    "identity_merges",
    metadata,
    sa.Column("from_customer_id", sa.String(40), primary_key=True),
    sa.Column("into_customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("merged_at", Timestamp, nullable=False),
)

identity_lock = sa.Table(
    "identity_lock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)
"""One row; every writing batch bumps it first, so writers to the graph take turns."""

identity_conflicts = sa.Table(
    "identity_conflicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("value", sa.String(512), nullable=False),
    sa.Column("limit_kind", sa.String(64), nullable=False),
    sa.Column("limit", sa.Integer, nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False, index=True),
    sa.Column("other_customer_id", sa.String(40), nullable=False),
    sa.Column("sides", sa.JSON, nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("event_time", Timestamp, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("kind", "value", "customer_id", "other_customer_id", name="uq_conflict"),
)


_CHUNK = 1000  # IN-list size: few round trips, well under SQLite and PG parameter limits
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


_to_us = epoch_us


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _canonical(at: datetime) -> datetime:
    """The time as loading it from the store gives it back (UTC)."""
    return at if at.tzinfo is UTC else _from_us(_to_us(at))


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


# loading ---------------------------------------------------------------------------


def lock_graph(conn: sa.Connection) -> int:
    """Take the graph's write turn for this transaction; return the new version.

    The first statement of a writing batch: the row lock (PostgreSQL) or write lock
    (SQLite) is held until commit, so the batch's reads and writes see no other writer.
    """
    insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(identity_lock).values(id=1, version=1)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_={"version": identity_lock.c.version + 1}
        )
    )
    query = sa.select(identity_lock.c.version).where(identity_lock.c.id == 1)
    return int(conn.execute(query).scalar_one())


def follow(conn: sa.Connection, customer_id: str) -> str:
    """The id a customer has now, following the merge history."""
    t = identity_merges
    seen = {customer_id}
    while True:
        into = conn.execute(
            sa.select(t.c.into_customer_id).where(t.c.from_customer_id == customer_id)
        ).scalar()
        if into is None or into in seen:
            return customer_id
        seen.add(into)
        customer_id = into


def identifiers_of(conn: sa.Connection, customer_ids: Sequence[str]) -> list[Identifier]:
    """Every stored identifier of these customers."""
    t = identity_identifiers
    found: list[Identifier] = []
    for chunk in _chunks(list(customer_ids)):
        query = sa.select(t.c.kind, t.c.value).where(t.c.customer_id.in_(chunk))
        found += [(k, v) for k, v in conn.execute(query)]
    return found


def load_components(
    conn: sa.Connection,
    graph: IdentityGraph,
    idents: set[Identifier],
    cache: GraphCache | None = None,
) -> None:
    """Load into `graph` every stored customer holding one of `idents`, whole.

    With a `cache` (valid for this write turn, see `GraphCache.begin`), cached customers
    are taken from it and only the rest are read, then cached.
    """
    if cache is None:
        stored = _read_customers(conn, _owners(conn, idents))
    else:
        stored, missing = cache.lookup(idents)
        # A missing identifier's customer is never cached while the cache is valid;
        # if it were, the store's copy wins.
        fresh = _read_customers(conn, _owners(conn, missing))
        for cid, customer in fresh.items():
            cache.put(cid, customer)
        stored.update(fresh)
    for cid in sorted(stored):
        customer = stored[cid]
        members = {i: Seen(first, last) for i, first, last in customer.identifiers}
        stamps = {k: tuple(v) for k, v in orjson.loads(customer.trait_stamps).items()}
        traits = orjson.loads(customer.traits)
        graph.adopt(Component(members, traits, stamps, stored_ids={cid}))


def _owners(conn: sa.Connection, idents: Iterable[Identifier]) -> set[str]:
    """Ids of the stored customers holding any of `idents`."""
    t = identity_identifiers
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, value in idents:
        by_kind[kind].append(value)
    customer_ids: set[str] = set()
    for kind, values in by_kind.items():
        for chunk in _chunks(values):
            query = sa.select(t.c.customer_id).where(t.c.kind == kind, t.c.value.in_(chunk))
            customer_ids.update(conn.execute(query).scalars())
    return customer_ids


def _read_customers(conn: sa.Connection, customer_ids: set[str]) -> dict[str, CachedCustomer]:
    """These customers as stored: identifier times and traits JSON."""
    if not customer_ids:
        return {}
    t, c = identity_identifiers, identity_customers
    members: dict[str, list[tuple[Identifier, datetime, datetime]]] = defaultdict(list)
    traits: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(sorted(customer_ids)):
        rows = conn.execute(
            sa.select(
                t.c.customer_id, t.c.kind, t.c.value, t.c.first_seen_us, t.c.last_seen_us
            ).where(t.c.customer_id.in_(chunk))
        )
        for cid, kind, value, first, last in rows:
            members[cid].append(((kind, value), _from_us(first), _from_us(last)))
        query = sa.select(c.c.customer_id, c.c.traits, c.c.trait_stamps)
        for cid, values, stamps in conn.execute(query.where(c.c.customer_id.in_(chunk))):
            traits[cid] = (values, stamps)
    return {
        cid: CachedCustomer(tuple(members[cid]), *traits.get(cid, ("{}", "{}")))
        for cid in customer_ids
    }


# writing ---------------------------------------------------------------------------


def write_changes(
    store: StateStore,
    conn: sa.Connection,
    graph: IdentityGraph,
    names: dict[int, str] | None = None,
    *,
    persist: bool = True,
    cache: GraphCache | None = None,
) -> dict[str, str]:
    """Write the components `graph` changed, merges and conflicts; return old → new ids.

    Args:
        store: The state store (for its dialect-aware upsert).
        conn: The open transaction.
        graph: The graph after a batch.
        names: Filled with id(component) → customer id, to reuse.
        persist: False computes ids and merges but writes nothing (dry run).
        cache: Staged with what was written, applied when the transaction commits.
    """
    now = datetime.now(UTC)
    ident_rows: list[tuple[str, str, str, int, int]] = []
    customer_rows: list[dict[str, Any]] = []
    merges: dict[str, str] = {}
    for comp in graph.changed():
        cid = graph.customer_id(comp)
        if names is not None:
            names[id(comp)] = cid
        moved = comp.stored_ids != {cid}
        idents = comp.identifiers if moved else {i: comp.identifiers[i] for i in comp.dirty}
        for (kind, value), seen in idents.items():
            ident_rows.append((kind, value, cid, _to_us(seen.first), _to_us(seen.last)))
        traits: tuple[str, str] | None = None
        if moved or comp.traits_changed:
            traits = (_dumps(comp.traits), _dumps(comp.trait_stamps))
            customer_rows.append(
                {
                    "customer_id": cid,
                    "traits": traits[0],
                    "trait_stamps": traits[1],
                    "updated_at": now,
                }
            )
        for old in sorted(comp.stored_ids - {cid}):
            merges[old] = cid
        if cache is not None and persist:
            _stage(cache, cid, comp, traits)
    if not persist:
        return merges
    _upsert_identifiers(store, conn, ident_rows)
    store.upsert(conn, identity_customers, customer_rows)
    if merges:
        _record_merges(store, conn, merges, now)
    _record_conflicts(conn, graph.conflicts, now)
    return merges


_IDENTIFIER_COLUMNS = ("kind", "value", "customer_id", "first_seen_us", "last_seen_us")


def _upsert_identifiers(
    store: StateStore, conn: sa.Connection, rows: list[tuple[str, str, str, int, int]]
) -> None:
    """Upsert identifier rows: the hot write of every batch.

    On SQLite the rows (plain strings and integers, nothing for SQLAlchemy to convert)
    go straight to the driver's executemany with a statement compiled once; other
    databases take the store's usual upsert.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        named = [dict(zip(_IDENTIFIER_COLUMNS, row, strict=True)) for row in rows]
        store.upsert(conn, identity_identifiers, named)
        return
    conn.exec_driver_sql(_sqlite_upsert_sql(), rows)


@lru_cache(maxsize=1)
def _sqlite_upsert_sql() -> str:
    stmt = sqlite_insert(identity_identifiers)
    updates = {c: stmt.excluded[c] for c in _IDENTIFIER_COLUMNS[2:]}
    stmt = stmt.on_conflict_do_update(index_elements=["kind", "value"], set_=updates)
    compiled = stmt.compile(dialect=sqlite_dialect(), column_keys=list(_IDENTIFIER_COLUMNS))
    if tuple(compiled.positiontup or ()) != _IDENTIFIER_COLUMNS:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    return compiled.string


def _stage(cache: GraphCache, cid: str, comp: Component, traits: tuple[str, str] | None) -> None:
    """Stage the cache with the customer as just written, and drop merged-away ids."""
    if traits is None:
        held = cache.customers.get(cid)
        traits = (
            (held.traits, held.trait_stamps)
            if held is not None
            else (_dumps(comp.traits), _dumps(comp.trait_stamps))
        )
    for old in comp.stored_ids - {cid}:
        cache.stage(old, None)
    seen = tuple((i, _canonical(s.first), _canonical(s.last)) for i, s in comp.identifiers.items())
    cache.stage(cid, CachedCustomer(seen, *traits))


def _record_merges(
    store: StateStore, conn: sa.Connection, merges: Mapping[str, str], now: datetime
) -> None:
    m, c = identity_merges, identity_customers
    old = sorted(merges)
    for chunk in _chunks(old):
        conn.execute(sa.delete(c).where(c.c.customer_id.in_(chunk)))
    for source, target in merges.items():
        # Keep the history flat: whatever pointed at `source` now points at `target`.
        conn.execute(
            sa.update(m).where(m.c.into_customer_id == source).values(into_customer_id=target)
        )
    rows = [
        {"from_customer_id": s, "into_customer_id": t, "merged_at": now} for s, t in merges.items()
    ]
    store.upsert(conn, m, rows)


def _record_conflicts(conn: sa.Connection, conflicts: Sequence[Conflict], now: datetime) -> None:
    if not conflicts:
        return
    rows = [
        {
            "kind": c.kind,
            "value": c.value,
            "limit_kind": c.limit_kind,
            "limit": c.limit,
            "customer_id": c.customer_id,
            "other_customer_id": c.other_customer_id or "",
            "sides": {"customer": dict(c.customer), "other": dict(c.other)},
            "message_id": c.message_id[:200],
            "event_time": c.at,
            "created_at": now,
        }
        for c in conflicts
    ]
    insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(identity_conflicts).on_conflict_do_nothing(
        index_elements=["kind", "value", "customer_id", "other_customer_id"]
    )
    conn.execute(stmt, rows)


def stored_conflicts(engine: sa.Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """Stored conflicts, newest first (for reports)."""
    t = identity_conflicts
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]
