"""Declared field mappings: source paths tried in order, then a fallback.

A field is data a user can read and override in TOML::

    first_name = { path = ["traits.first_name", "context.traits.first_name"], fallback = "there" }
    email = "traits.email"            # shorthand for { path = "traits.email" }

Blank (`mapping.blank`) means None, text with nothing visible in it ("", white space,
zero-width and other invisible characters), NaN or infinity, an empty list or an empty
object; 0 and false are values, not blanks. Text that merely contains invisible
characters is a value and is sent as it is.

Transforms (`mapping.transforms`) apply to the value read from a path or `value`, never to
the fallback (a fallback is written as it should be sent). A transform that fails makes
the field invalid, with the reason, and the record a rejected row: it is not replaced
by the fallback, because a wrong value is a data problem the user must see.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator, model_validator

from mapping.blank import is_blank as is_blank  # re-exported: callers import it from here
from mapping.blank import is_blank_text
from mapping.codegen import Resolver, build_resolver
from mapping.paths import Getter, compile_getter, get_path
from mapping.settings import StrictModel
from mapping.transforms import Transform, TransformError, compile_chain, compile_transform
from mapping.types import RejectedRow


class FieldSpec(StrictModel):
    """Where one ESP field comes from."""

    path: list[str] = Field(default_factory=list, description="Source paths, first non-blank wins.")
    value: Any = Field(default=None, description="A constant, used when no path is given.")
    transform: list[str] = Field(default_factory=list, description="Transforms, applied in order.")
    fallback: Any = Field(default=None, description="Used when every path is blank.")
    required: bool = Field(
        default=False, description="A blank value with no fallback rejects the record."
    )

    def transform_value(self, value: Any) -> Any:
        """Apply this field's transforms (compiled once).

        Raises:
            TransformError: naming the transform that failed and why.
        """
        return compile_chain(tuple(self.transform))(value)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"path": [data]}
        if isinstance(data, dict) and isinstance(data.get("path"), str):
            return {**data, "path": [data["path"]]}
        return data

    @field_validator("transform", mode="before")
    @classmethod
    def _one_transform(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("transform")
    @classmethod
    def _known_transforms(cls, value: list[str]) -> list[str]:
        for name in value:
            compile_transform(name)  # raises ValueError naming the bad transform
        return value


@dataclass(slots=True)
class Resolved:
    """Field values of one record, and which fields fell back or failed."""

    values: dict[str, Any] = field(default_factory=dict)
    fallbacks_used: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    """Field name → why its value could not be used (a transform failed)."""

    @property
    def ok(self) -> bool:
        """True when no required field is missing and no field is invalid."""
        return not self.missing and not self.invalid

    def problems(self) -> list[tuple[str, str]]:
        """(field, reason) for every missing or invalid field."""
        found = [(name, "no value and no fallback") for name in self.missing]
        return found + sorted(self.invalid.items())

    def rejects(
        self,
        source_ref: str,
        *,
        stage: str = "mapping",
        destination: str | None = None,
        key: str | None = None,
        payload: Mapping[str, Any] | None = None,
        prefix: str = "",
    ) -> list[RejectedRow]:
        """One `RejectedRow` per missing or invalid field (empty when `ok`).

        Args:
            source_ref: The record (file:line, table:pk or messageId).
            stage: Where it was rejected.
            destination: The destination name, if any.
            key: The record's idempotency key, if any.
            payload: The record, for `espbridge retry`.
            prefix: Prepended to field names, e.g. `track_event.`.
        """
        if not self.missing and not self.invalid:
            return []  # the common case, without building `problems()`
        return [
            RejectedRow(
                source_ref=source_ref,
                field=f"{prefix}{name}",
                reason=reason,
                stage=stage,
                payload=dict(payload or {}),
                destination=destination,
                key=key,
            )
            for name, reason in self.problems()
        ]


class FallbackCounter(Counter[str]):
    """How often each field fell back, for the run report; merge with `+=` or `update`."""

    def add(self, resolved: Resolved, prefix: str = "") -> None:
        """Count the fallbacks of one resolved record."""
        if prefix:
            for name in resolved.fallbacks_used:
                self[f"{prefix}{name}"] += 1
        else:  # runs per record: no key to build for a plain `str` name
            get = self.get
            for name in resolved.fallbacks_used:
                key = name if type(name) is str else f"{name}"
                self[key] = get(key, 0) + 1

    def add_all(self, items: Iterable[Resolved], prefix: str = "") -> None:
        """Count the fallbacks of many records."""
        for item in items:
            self.add(item, prefix)

    def as_dict(self) -> dict[str, int]:
        """Plain, sorted dict (JSON for the run record)."""
        return dict(sorted(self.items()))


Plan = tuple[tuple[Getter, ...], Transform | None, Any, bool, Any, bool, bool]
"""A compiled `FieldSpec`: (getters, transform chain, fallback, has fallback, value,
has value, required)."""

_PLANS: dict[int, tuple[dict[str, Any], Plan, weakref.ref[FieldSpec]]] = {}


def plan_of(spec: FieldSpec) -> Plan:
    """The spec compiled for `resolve`, built once per spec and reused.

    Kept beside the spec rather than on it (a private attribute would change how specs
    compare); it is rebuilt when the spec's fields are replaced (`model_copy(update=…)`).
    """
    held = _PLANS.get(id(spec))
    # The entry keeps the spec's field dict alive, so no other spec can have it.
    if held is not None and held[0] is spec.__dict__:
        return held[1]
    return _register(spec)


def _register(spec: FieldSpec) -> Plan:
    plan = _compile(spec)
    key = id(spec)
    _PLANS[key] = (spec.__dict__, plan, weakref.ref(spec, lambda _ref: _PLANS.pop(key, None)))
    return plan


def _compile(spec: FieldSpec) -> Plan:
    getters = tuple(_getter(path) for path in spec.path)
    chain = _chain(spec) if spec.transform else None
    return (
        getters,
        chain,
        spec.fallback,
        not is_blank(spec.fallback),
        spec.value,
        not is_blank(spec.value),
        spec.required,
    )


def _getter(path: str) -> Getter:
    try:
        return compile_getter(path)
    except ValueError:
        return lambda data: get_path(data, path)  # raises as before, when reached


def _chain(spec: FieldSpec) -> Transform:
    try:
        return compile_chain(tuple(spec.transform))
    except ValueError:
        return spec.transform_value  # raises as before, when reached


def resolve_field(spec: FieldSpec, data: Mapping[str, Any]) -> tuple[Any, bool]:
    """The value of one field and whether its fallback was used."""
    for path in spec.path:
        value = get_path(data, path)
        if value is not None and not is_blank(value):
            return value, False
    if not spec.path and not is_blank(spec.value):
        return spec.value, False
    if not is_blank(spec.fallback):
        return spec.fallback, True
    return None, False


def resolve_planned(specs: Mapping[str, FieldSpec], data: Mapping[str, Any]) -> Resolved:
    """`resolve` by a loop over each field's compiled plan: the reference semantics, and
    what the generated resolvers use for data that is not a plain dict."""
    out = Resolved({}, [], [], {})
    values, fallbacks_used, plans = out.values, out.fallbacks_used, _PLANS
    for name, spec in specs.items():
        held = plans.get(id(spec))  # `plan_of`, inlined: this runs per field per record
        plan = held[1] if held is not None and held[0] is spec.__dict__ else _register(spec)
        getters, chain, fallback, has_fallback, const, has_const, required = plan
        value: Any = None
        fell_back = False
        for get in getters:
            found = get(data)
            if found is None:
                continue
            kind = type(found)
            if kind is str:
                if is_blank_text(found):
                    continue
            elif kind is not int and is_blank(found):
                continue
            value = found
            break
        else:
            if has_const and not getters:
                value = const
            elif has_fallback:
                value, fell_back = fallback, True
        if chain is not None and not fell_back and value is not None:
            try:
                value = chain(value)
            except TransformError as exc:
                out.invalid[name] = str(exc)
                continue
            if is_blank(value):
                if has_fallback:
                    value, fell_back = fallback, True
                else:
                    value = None
        if fell_back:
            fallbacks_used.append(name)
        if value is None:  # blank: a found, constant or fallback value is never blank
            if required:
                out.missing.append(name)
            continue
        values[name] = value
    return out


def resolve(specs: Mapping[str, FieldSpec], data: Mapping[str, Any]) -> Resolved:
    """Resolve every declared field against one message (as a dict).

    Runs the map's generated resolver (`mapping.codegen`), built once per map.
    """
    held = _BY_MAP.get(id(specs))
    if held is not None and held[1] == tuple(specs) and held[2] == tuple(map(id, specs.values())):
        return held[3](data)
    return resolver_for(specs)(data)


_MAP_LIMIT = 256
"""Field maps whose compiled resolver stays cached (maps in use are few; a map built
per call, such as defaults merged with overrides, finds its twin by content)."""

_BY_MAP: dict[int, tuple[Mapping[str, FieldSpec], tuple[str, ...], tuple[int, ...], Resolver]] = {}
"""id(map) → (the map, kept alive so its id stays its own; its names; its specs' ids;
the resolver). Checked against the map's current content on every use."""

_Content = tuple[tuple[str, ...], tuple[int, ...]]
_BY_CONTENT: dict[_Content, tuple[tuple[FieldSpec, ...], Resolver]] = {}
"""(names, spec ids) → (the specs, kept alive so their ids stay theirs; the resolver)."""


def resolver_for(specs: Mapping[str, FieldSpec]) -> Resolver:
    """The compiled resolver of a field map as it is now: `resolver_for(specs)(data)` is
    `resolve(specs, data)`, without `resolve`'s check that the map is unchanged.

    Compiled once per content (the names, in order, and the very spec objects; specs
    are frozen), so maps rebuilt with the same specs share one resolver. For loops over
    many records with one map.
    """
    names, items = tuple(specs), tuple(specs.values())
    key = (names, tuple(map(id, items)))
    held = _BY_CONTENT.get(key)
    if held is None:
        fields = list(zip(names, items, strict=True))
        frozen = dict(fields)  # the generic path reads this copy, not a map changed later
        function = build_resolver(
            fields,
            resolved=Resolved,
            generic=lambda data: resolve_planned(frozen, data),
            chain_of=_chain,
        )
        held = (items, function)
        if len(_BY_CONTENT) >= _MAP_LIMIT:
            _BY_CONTENT.clear()
        _BY_CONTENT[key] = held
    if len(_BY_MAP) >= _MAP_LIMIT:
        _BY_MAP.clear()
    _BY_MAP[id(specs)] = (specs, *key, held[1])
    return held[1]
