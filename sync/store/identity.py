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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mapping.identity import Conflict, IdentityGraph, Seen
from mapping.identity.graph import Component, Loader, customer_id_for
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


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


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


def read_missing(conn: sa.Connection, cache: GraphCache, idents: Iterable[Identifier]) -> list[str]:
    """Put into `cache` every stored customer holding one of `idents` it does not hold.

    `cache` must be valid for this transaction (`GraphCache.begin`, or a scratch one).
    A customer is read whole, so the cache then knows every identifier of it. Returns
    the ids of the customers read.
    """
    if cache.complete:
        return []
    missing = cache.missing(idents)
    if not missing:
        return []
    fresh = _read_customers(conn, _owners(conn, missing))
    for cid, (customer, times) in fresh.items():
        cache.put(cid, customer, times)
    return list(fresh)


def loader(cache: GraphCache) -> Loader:
    """Builds a cached customer as a `Component` of the graph (see `IdentityGraph.attach`).

    Times come from `cache.owner`, where the graph re-times identifiers during a batch.
    """
    customers, owner = cache.customers, cache.owner

    def load(customer_id: str) -> Component:
        held = customers[customer_id]
        members: dict[Identifier, Seen] = {}
        for ident in held.identifiers:
            _cid, first, last = owner[ident]
            members[ident] = Seen(first, last)
        stamps = {k: (v[0], v[1]) for k, v in orjson.loads(held.trait_stamps).items()}
        traits = orjson.loads(held.traits)
        return Component(members, traits, stamps, stored_ids={customer_id})

    return load


def load_components(
    conn: sa.Connection,
    graph: IdentityGraph,
    idents: Iterable[Identifier],
    cache: GraphCache | None = None,
) -> GraphCache:
    """Give `graph` every stored customer holding one of `idents` (loaded when touched).

    With a `cache` (valid for this write turn, see `GraphCache.begin`), cached customers
    are taken from it and only the rest are read, then cached; without one, they are
    read into a scratch cache. Returns the cache the graph reads (and re-times).
    """
    base = cache if cache is not None else GraphCache(limit=0, complete=False)
    if base.complete is None:
        # Once per fresh cache: on an empty graph, everything stored will pass through it.
        t = identity_identifiers
        base.complete = conn.execute(sa.select(t.c.kind).limit(1)).first() is None
    fresh = read_missing(conn, base, idents)
    graph.attach(base.owner, loader(base))
    ranking = graph.ranking
    for cid in fresh:
        if customer_id_for(base.customers[cid].identifiers, ranking) != cid:
            # Stored under an id the current priority would not give it (the
            # priority changed): load it, so a change renames it as a merge would.
            graph.load_stored(cid)
    return base


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


def _read_customers(
    conn: sa.Connection, customer_ids: set[str]
) -> dict[str, tuple[CachedCustomer, list[tuple[Identifier, int, int]]]]:
    """These customers as stored: identifiers with their times, and traits JSON."""
    if not customer_ids:
        return {}
    t, c = identity_identifiers, identity_customers
    members: dict[str, list[tuple[Identifier, int, int]]] = defaultdict(list)
    traits: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(sorted(customer_ids)):
        rows = conn.execute(
            sa.select(
                t.c.customer_id, t.c.kind, t.c.value, t.c.first_seen_us, t.c.last_seen_us
            ).where(t.c.customer_id.in_(chunk))
        )
        for cid, kind, value, first, last in rows:
            members[cid].append(((kind, value), first, last))
        query = sa.select(c.c.customer_id, c.c.traits, c.c.trait_stamps)
        for cid, values, stamps in conn.execute(query.where(c.c.customer_id.in_(chunk))):
            traits[cid] = (values, stamps)
    out: dict[str, tuple[CachedCustomer, list[tuple[Identifier, int, int]]]] = {}
    for cid in sorted(customer_ids):
        times = members[cid]
        idents = tuple(ident for ident, _first, _last in times)
        out[cid] = (CachedCustomer(idents, *traits.get(cid, ("{}", "{}"))), times)
    return out


# writing ---------------------------------------------------------------------------

Build = Callable[[Component, str], Any]
"""(changed component, its customer id) → the `Customer` to hand out (and cache)."""


def write_changes(
    store: StateStore,
    conn: sa.Connection,
    graph: IdentityGraph,
    names: dict[int, str] | None = None,
    *,
    persist: bool = True,
    cache: GraphCache | None = None,
    build: Build | None = None,
) -> dict[str, str]:
    """Write the components `graph` changed, merges and conflicts; return old → new ids.

    Only what changed is written: identifiers added or seen at a new hour (every one of
    a customer whose id changed), and the traits row when traits changed or the id did.
    Identifiers the graph only re-timed (`IdentityGraph.touched`) get their times
    updated; the cache already holds those times.

    Args:
        store: The state store (for its dialect-aware upsert).
        conn: The open transaction.
        graph: The graph after a batch.
        names: Filled with id(component) → customer id, to reuse.
        persist: False computes ids and merges but writes nothing (dry run).
        cache: Staged with what was written, applied when the transaction commits.
        build: Called once per changed component; what it returns is cached with it.
    """
    now = datetime.now(UTC)
    ident_rows: list[tuple[str, str, str, int, int]] = []
    customer_rows: list[tuple[str, str, str]] = []
    merges: dict[str, str] = {}
    renamed: dict[str, str] = {}  # ids only a conflict knew: merge rows, not merges
    retime_rows: list[tuple[int, int, str, str]] = []
    staging = cache is not None and persist
    ranking, known = graph.ranking, graph.known
    for comp in graph.changed():
        cid = customer_id_for(comp.identifiers, ranking)
        if names is not None:
            names[id(comp)] = cid
        stored = comp.stored_ids
        moved = len(stored) != 1 or cid not in stored
        members = comp.identifiers
        if moved:
            for (kind, value), seen in members.items():
                ident_rows.append((kind, value, cid, seen.first, seen.last))
        else:
            for ident in comp.dirty:
                seen = members[ident]
                if ident in known:  # stored, and still this customer's: times only
                    retime_rows.append((seen.first, seen.last, ident[0], ident[1]))
                else:
                    ident_rows.append((ident[0], ident[1], cid, seen.first, seen.last))
        traits: tuple[str, str] | None = None
        if moved or comp.traits_changed:
            traits = (_dumps(comp.traits), _dumps(comp.trait_stamps))
            customer_rows.append((cid, *traits))
        if moved:
            for old in sorted(stored - {cid}):
                merges[old] = cid
        if comp.named:
            # An id a conflict recorded before the component got its final id must
            # lead to it, as it would had the batch been split there (`follow`).
            for old in sorted(comp.named - stored - {cid}):
                renamed[old] = cid
        built = build(comp, cid) if build is not None else None
        if staging:
            assert cache is not None
            _stage(cache, cid, comp, traits, built)
    if not persist:
        return merges
    for ident in graph.touched:
        held = known[ident]
        retime_rows.append((held[1], held[2], ident[0], ident[1]))
    _retime_identifiers(conn, retime_rows)
    _upsert_identifiers(store, conn, ident_rows)
    _delete_retired(conn, graph.retired)
    _upsert_customers(store, conn, customer_rows, now)
    if merges or renamed:
        _record_merges(store, conn, {**renamed, **merges}, now)
    _record_conflicts(conn, graph.conflicts, now)
    return merges


_IDENTIFIER_COLUMNS = ("kind", "value", "customer_id", "first_seen_us", "last_seen_us")


def _delete_retired(conn: sa.Connection, retired: Iterable[Identifier]) -> None:
    """Delete the rows of user ids an alias renamed: the customer holds them as former.

    The graph already dropped them from the known map (the cache's), so the cache matches
    the store once this commits.
    """
    t = identity_identifiers
    for part in _chunks(sorted(value for _kind, value in retired)):
        conn.execute(sa.delete(t).where(t.c.kind == "user_id", t.c.value.in_(part)))


def _retime_identifiers(conn: sa.Connection, rows: list[tuple[int, int, str, str]]) -> None:
    """Store new (first, last seen) of stored identifiers that keep their customer.

    Their rows exist with that customer, so an UPDATE of the two times is enough: the
    customer_id index is left alone, unlike an upsert's.
    """
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_RETIME, rows)
        return
    t = identity_identifiers
    stmt = (
        sa.update(t)
        .where(t.c.kind == sa.bindparam("b_kind"), t.c.value == sa.bindparam("b_value"))
        .values(first_seen_us=sa.bindparam("b_first"), last_seen_us=sa.bindparam("b_last"))
    )
    named = [
        {"b_first": first, "b_last": last, "b_kind": kind, "b_value": value}
        for first, last, kind, value in rows
    ]
    conn.execute(stmt, named)


_SQLITE_RETIME = (
    "UPDATE identity_identifiers SET first_seen_us = ?, last_seen_us = ? "
    "WHERE kind = ? AND value = ?"
)
_CUSTOMER_COLUMNS = ("customer_id", "traits", "trait_stamps", "updated_at")


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
    conn.exec_driver_sql(_sqlite_upsert_sql("identity_identifiers"), rows)


def _upsert_customers(
    store: StateStore, conn: sa.Connection, rows: list[tuple[str, str, str]], now: datetime
) -> None:
    """Upsert traits rows, as `_upsert_identifiers` does (one executemany on SQLite)."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        named = [dict(zip(_CUSTOMER_COLUMNS, (*row, now), strict=True)) for row in rows]
        store.upsert(conn, identity_customers, named)
        return
    # The column type's own conversion, once for the batch, as SQLAlchemy would bind it.
    process = identity_customers.c.updated_at.type.bind_processor(conn.dialect)
    stamp = process(now) if process is not None else now
    conn.exec_driver_sql(_sqlite_upsert_sql("identity_customers"), [(*row, stamp) for row in rows])


@lru_cache(maxsize=4)
def _sqlite_upsert_sql(table_name: str) -> str:
    table = identity_identifiers if table_name == "identity_identifiers" else identity_customers
    columns = _IDENTIFIER_COLUMNS if table is identity_identifiers else _CUSTOMER_COLUMNS
    keys = [c.name for c in table.primary_key.columns]
    stmt = sqlite_insert(table)
    updates = {c: stmt.excluded[c] for c in columns if c not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
    compiled = stmt.compile(dialect=sqlite_dialect(), column_keys=list(columns))
    if tuple(compiled.positiontup or ()) != columns:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    return compiled.string


def _stage(
    cache: GraphCache,
    cid: str,
    comp: Component,
    traits: tuple[str, str] | None,
    built: Any,
) -> None:
    """Stage the cache with the customer as just written, and drop merged-away ids.

    `built` (the batch's `Customer`) is cached as the store would give it back: with
    traits decoded from the JSON written (key order included) when they changed.
    """
    if traits is None:
        held = cache.customers.get(cid)
        traits = (
            (held.traits, held.trait_stamps)
            if held is not None
            else (_dumps(comp.traits), _dumps(comp.trait_stamps))
        )
    elif built is not None:
        built = replace(built, traits=orjson.loads(traits[0]))
    for old in comp.stored_ids:
        if old != cid:
            cache.stage(old, None)
    members = comp.identifiers
    times = [(i, s.first, s.last) for i, s in members.items()]
    cache.stage(cid, CachedCustomer(tuple(members), *traits), times, built)


def _record_merges(
    store: StateStore, conn: sa.Connection, merges: Mapping[str, str], now: datetime
) -> None:
    m, c = identity_merges, identity_customers
    old = sorted(merges)
    for chunk in _chunks(old):
        conn.execute(sa.delete(c).where(c.c.customer_id.in_(chunk)))
    # Keep the history flat: whatever pointed at a source now points at its target
    # (one executemany; each row applies in turn, as separate statements would).
    flatten = (
        sa.update(m)
        .where(m.c.into_customer_id == sa.bindparam("b_source"))
        .values(into_customer_id=sa.bindparam("b_target"))
    )
    conn.execute(flatten, [{"b_source": s, "b_target": t} for s, t in merges.items()])
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
