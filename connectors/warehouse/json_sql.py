"""DuckDB SQL that renders a Segment-table row as its message, as JSON text.

The DuckDB fast path lets DuckDB build each message (vectorized, in C++) and parses the
text with orjson, as the segment source parses its lines: converting every column to a
Python object through DuckDB's row fetch costs more than the rest of the read.

The JSON must decode to exactly what `RowPlan.message` builds from the same row, key
order included, so every expression mirrors `rows.to_json_value` and `RowPlan`:

- the message is one `concat` whose arguments are keys (with their commas) and values,
  each NULL when absent (`concat` skips NULLs), so its text is copied once; nested
  ones and `concat_ws` joins cost twice as much, mostly in DuckDB's planning;
- a nested object (`context`, `context.page`) takes the place of its first non-NULL
  column, as `setdefault` does, and is left out when all its columns are NULL; the index
  of that first column, computed once per row in a subquery, also tells each key
  whether a comma goes before it. When a key of its parent sits between its columns,
  it is written once per run of its columns, each copy for its own run;
- text that looks like JSON (`[`…`]`, `{`…`}`) is embedded as JSON when DuckDB finds it
  valid, else as a string. DuckDB's parser is laxer than orjson, so a value only DuckDB
  accepts makes the whole line invalid for orjson, and the row is read the generic way;
- values Python would hold differently (NaN, infinite dates, integers beyond 64 bits)
  also come out as invalid JSON and take the generic way.

`message_sql` returns None for anything else (a column type it does not handle, or
columns whose paths collide): such tables are read through the generic path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import orjson

from connectors.warehouse.rows import BODY_FOR_KIND, RowPlan

_INTEGERS = frozenset(
    ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")
).union(("UINTEGER", "UBIGINT", "UHUGEINT"))
_TEXT = frozenset(("VARCHAR", "JSON"))
_INVALID = "'<not JSON>'"
"""A fragment orjson rejects: the row is then read through the generic path."""
_ELSE_INVALID = f"WHEN {{0}} IS NOT NULL THEN {_INVALID} END"
_ORJSON_INTS = "{0} BETWEEN -9223372036854775808 AND 18446744073709551615"
"""The integers orjson decodes as int (it makes larger ones floats, Python keeps ints)."""

Item = tuple[tuple[str, ...], str, str]
"""(path of keys, SQL of the JSON value, quoted column) of one non-body column."""


def quote(name: str) -> str:
    """A DuckDB identifier, always quoted (names come from the table as they are)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def _time(col: str, kind: str, fmt: str) -> str:
    """`isoformat()` in SQL, for the years Python has (others: invalid, the generic path).

    Flat, so a NULL falls through every test to `strftime(NULL)`: NULL.
    """
    text = f"strftime({col}, '\"{fmt}\"')"
    if kind == "TIMESTAMP":  # isoformat() leaves out a zero fraction
        # Two formats chosen per row: a `replace` of ".000000" costs as much as strftime.
        whole = f"strftime({col}, '\"{fmt.replace('.%f', '')}\"')"
        text = f"WHEN epoch_us({col}) % 1000000 = 0 THEN {whole} ELSE {text}"
    else:
        text = f"ELSE {text}"
    return (
        f"CASE WHEN {col} NOT BETWEEN {kind} '0001-01-01' AND "
        f"{kind} '9999-12-31 23:59:59.999999' THEN {_INVALID} {text} END"
    )


def _maybe_json(col: str) -> str:
    """Like `rows._maybe_json`: a stringified array or object is embedded as JSON."""
    # ascii() is the first code point (91 "[", 123 "{"): cheaper than any substring.
    return (
        f"CASE WHEN ascii({col}) IN (91, 123) AND (ends_with({col}, ']') OR "
        f"ends_with({col}, '}}')) AND json_valid({col}) THEN {col} "
        f"ELSE CAST(to_json({col}) AS VARCHAR) END"
    )


def value_sql(col: str, dtype: str, *, parse_text: bool, message_id: bool) -> str | None:
    """The JSON text of one column's value, as `to_json_value` would make it (None: unsupported).

    Args:
        col: The quoted column.
        dtype: Its DuckDB type name.
        parse_text: Text columns holding JSON are parsed (properties, traits, context).
        message_id: The messageId column (numbers become strings).
    """
    if dtype in _TEXT:
        text = col if dtype == "VARCHAR" else f"CAST({col} AS VARCHAR)"
        return _maybe_json(text) if parse_text else f"CAST(to_json({text}) AS VARCHAR)"
    if dtype == "UUID":
        return f"'\"' || CAST({col} AS VARCHAR) || '\"'"
    if message_id:
        return f"'\"' || CAST({col} AS VARCHAR) || '\"'" if dtype in _INTEGERS else None
    if dtype in ("HUGEINT", "UHUGEINT"):
        fits = _ORJSON_INTS.format(col)
        return f"CASE WHEN {fits} THEN CAST({col} AS VARCHAR) {_ELSE_INVALID.format(col)}"
    if dtype in _INTEGERS or dtype == "BOOLEAN":
        return f"CAST({col} AS VARCHAR)"
    if dtype in ("DOUBLE", "FLOAT"):
        return f"CAST(to_json(CAST({col} AS DOUBLE)) AS VARCHAR)"
    if dtype.startswith("DECIMAL"):
        # An integral Decimal becomes an int; any other, the float nearest its digits.
        return (
            f"CASE WHEN {col} <> trunc({col}) THEN CAST({col} AS VARCHAR) "
            f"WHEN {_ORJSON_INTS.format(col)} THEN CAST(CAST({col} AS HUGEINT) AS VARCHAR) "
            f"{_ELSE_INVALID.format(col)}"
        )
    if dtype == "DATE":
        return _time(col, "DATE", "%Y-%m-%d")
    if dtype == "TIMESTAMP":
        return _time(col, "TIMESTAMP", "%Y-%m-%dT%H:%M:%S.%fZ")
    return None


def _key(name: str, *, comma: bool, brace: bool = False) -> str:
    """The SQL literal of `,"name":` (or `"name":`, `,"name":{`)."""
    text = ("," if comma else "") + orjson.dumps(name).decode() + ":" + ("{" if brace else "")
    return literal(text)


class _Builder:
    """Writes the `concat` arguments of a message, and the "first column" of each object.

    Every argument is a key (with its comma) or a value, NULL when absent (`concat`
    skips NULLs), so the message text is copied once. Whether a key needs a comma
    depends on whether an earlier key of its object is present: each nested object has a
    column `espbridge_first_<n>`, the index of its first non-NULL column (NULL: the
    object is absent), computed once per row in a subquery, so every test is linear.
    """

    def __init__(self) -> None:
        self.firsts: list[str] = []

    def first(self, columns: Sequence[str]) -> str:
        """The alias of a new first-column index over `columns`."""
        alias = f"espbridge_first_{len(self.firsts)}"
        whens = " ".join(f"WHEN {col} IS NOT NULL THEN {n}" for n, col in enumerate(columns, 1))
        self.firsts.append(f"CASE {whens} END AS {alias}")
        return alias

    def members(self, items: Sequence[Item], first: str | None) -> list[str] | None:
        """The arguments of an object's keys, in the order `setdefault` would give them.

        Args:
            items: The object's columns (paths relative to it), in column order.
            first: Its first-column alias (None: the message, whose `type` comes first).

        A nested object takes the place of its first non-NULL column. When keys of its
        parent sit between its columns, it is written once per run of its columns, each
        copy only when its first non-NULL column is in that run. Returns None when a key
        is both a value and an object (the generic path decides what that does).
        """
        leaves = {path[0] for path, _, _ in items if len(path) == 1}
        if leaves & {path[0] for path, _, _ in items if len(path) > 1}:
            return None
        arguments: list[str] = []
        objects: dict[str, tuple[list[Item], str]] = {}
        indexed = list(enumerate(items, 1))
        for (key, nested), group in groupby(indexed, key=lambda i: (i[1][0][0], len(i[1][0]) > 1)):
            run = list(group)
            if not nested:
                for index, (_, value, col) in run:
                    arguments += [
                        f"CASE WHEN {col} IS NOT NULL THEN {self._key(key, first, index)} END",
                        value,
                    ]
                continue
            if key not in objects:
                inner = [(p[1:], v, c) for p, v, c in items if p[0] == key and len(p) > 1]
                objects[key] = (inner, self.first([c for _, _, c in inner]))
            inner, own = objects[key]
            inner_cols = [c for _, _, c in inner]
            low = inner_cols.index(run[0][1][2]) + 1
            high = low + len(run) - 1
            whole = low == 1 and high == len(inner)
            emit = f"{own} IS NOT NULL" if whole else f"{own} BETWEEN {low} AND {high}"
            body = self.members(inner, own)
            if body is None:
                return None
            if not whole:  # another copy is written at another run
                body = [f"CASE WHEN {emit} THEN {b} END" for b in body]
            opener = self._key(key, first, run[0][0], brace=True)
            arguments += [
                f"CASE WHEN {emit} THEN {opener} END",
                *body,
                f"CASE WHEN {emit} THEN '}}' END",
            ]
        return arguments

    @staticmethod
    def _key(key: str, first: str | None, index: int, *, brace: bool = False) -> str:
        """The key, with a comma when a key of its object comes before it."""
        if first is None or index == 1:
            return _key(key, comma=first is None, brace=brace)
        with_comma, bare = _key(key, comma=True, brace=brace), _key(key, comma=False, brace=brace)
        return f"CASE WHEN {first} < {index} THEN {with_comma} ELSE {bare} END"


@dataclass(frozen=True, slots=True)
class MessageSQL:
    """How to select message JSON from a Segment table.

    Attributes:
        json: The JSON expression, over `rows`.
        rows: `SELECT *, <first-column indexes>` of the table (a subquery).
    """

    json: str
    firsts: tuple[str, ...]

    def rows(self, source: str) -> str:
        """The subquery of `source`'s rows with the first-column indexes."""
        return f"(SELECT *, {', '.join(self.firsts)} FROM {source})" if self.firsts else source


def _all_null(columns: Sequence[str]) -> str:
    return "(" + " AND ".join(f"{c} IS NULL" for c in columns) + ")"


def _default_timestamp(items: Sequence[Item]) -> list[str]:
    """`timestamp` = `receivedAt` when there is no `timestamp` (after the columns' keys)."""
    received = [(value, col) for path, value, col in items if path == ("receivedAt",)]
    stamped = [col for path, _, col in items if path == ("timestamp",)]
    if not received:
        return []
    value, col = received[-1]
    key = _key("timestamp", comma=True)
    if not stamped:
        return [f"CASE WHEN {col} IS NOT NULL THEN {key} END", value]
    missing = _all_null(stamped)
    return [
        f"CASE WHEN {missing} AND {col} IS NOT NULL THEN {key} END",
        f"CASE WHEN {missing} THEN {value} END",
    ]


def message_sql(columns: Sequence[tuple[str, str]], kind: str, id_column: str) -> MessageSQL | None:
    """SQL of the message JSON of a row of a Segment table (None: not supported).

    Args:
        columns: (name, DuckDB type) of every column of the table, in order.
        kind: The call type of the table's rows.
        id_column: The row id column (as named in the table).
    """
    plan = RowPlan([name for name, _ in columns], kind, query_mode=False, id_column=id_column)
    items: list[Item] = []
    body: list[Item] = []
    for index, action, keys in plan.steps:
        name, dtype = columns[index]
        col = quote(name)
        path = keys if action != "body" else keys[:1]
        value = value_sql(
            col,
            dtype,
            parse_text=action in ("body", "nested"),
            message_id=action == "top" and path == ("messageId",),
        )
        if value is None:
            return None
        (body if action == "body" else items).append((path, value, col))
    if any(path[0] == "type" for path, _, _ in items):
        return None
    if sum(path == ("receivedAt",) for path, _, _ in items) > 1:
        return None
    builder = _Builder()
    top = builder.members(items, None)
    if top is None:
        return None
    head = literal("{" + orjson.dumps("type").decode() + ":" + orjson.dumps(kind).decode())
    arguments = [head, *top, *_default_timestamp(items)]
    if body:
        section = BODY_FOR_KIND.get(kind, "properties")
        own = builder.first([col for _, _, col in body])
        members = builder.members(body, own)
        if members is None:
            return None
        opener = _key(section, comma=True, brace=True)
        arguments += [f"CASE WHEN {own} IS NOT NULL THEN {opener} END", *members]
        arguments.append(f"CASE WHEN {own} IS NOT NULL THEN '}}' END")
    arguments.append("'}'")
    return MessageSQL(f"concat({', '.join(arguments)})", tuple(builder.firsts))
