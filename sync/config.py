"""The TOML config: load, expand `${ENV_VAR}` references, validate strictly.

Every section is a typed model; an unknown key is an error, and a validation error
names the file, the key path and what was expected.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from connectors.klaviyo.settings import KlaviyoSettings
from connectors.mailchimp.settings import MailchimpSettings
from connectors.segment.settings import SegmentSourceSettings
from connectors.warehouse.settings import WarehouseSourceSettings
from mapping.identity.settings import IdentitySettings
from mapping.settings import StrictModel
from mapping.templates import TemplateCheck
from sync.ingest.settings import InboxSourceSettings, IngestSettings
from sync.redact import MIN_MASKED, url_secrets
from sync.triggers.settings import TriggerEngineSettings, TriggerSettings, validate_triggers

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A validator message that starts with its own key path, e.g. "api_key: expected …".
_PATH_PREFIX = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+|\[\d+\])*): ")

SourceSettings = Annotated[
    SegmentSourceSettings | WarehouseSourceSettings | InboxSourceSettings,
    Field(discriminator="type"),
]
DestinationSettings = Annotated[KlaviyoSettings | MailchimpSettings, Field(discriminator="type")]


class ConfigError(Exception):
    """The config cannot be used; the message says where and why."""


class StateSettings(StrictModel):
    """`[state]`: where cursors, the sent-ledger, rejects and run records live."""

    url: str = Field(
        default="sqlite:///.espbridge/state.db",
        description="SQLAlchemy URL: sqlite:///file.db (default, WAL) or postgresql+psycopg://…",
    )
    # Retention (`sync.store.retention`): applied by runs at most once an hour, and by
    # `espbridge prune`. 0 keeps a table forever.
    sent_ledger_retention_days: int = Field(
        default=90,
        ge=0,
        description="Acknowledged sent-ledger keys are deleted this long after their "
        "acknowledgement; a message re-delivered later is sent again. Pending keys stay.",
    )
    rejects_retention_days: int = Field(
        default=90, ge=0, description="Rejected rows are deleted this long after the reject."
    )
    runs_retention_days: int = Field(
        default=90, ge=0, description="Run records are deleted this long after the run ended."
    )


class SyncSettings(StrictModel):
    """`[syncs.<name>]`: one source into one or more destinations."""

    source: str = Field(description="Name of a `[sources.<name>]` section.")
    destinations: list[str] = Field(min_length=1, description="Names of destinations.")
    schedule: str | None = Field(default=None, description="Cron expression for `schedule`.")
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Messages per checkpoint.")
    reject_threshold: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Exit non-zero when rejected/read exceeds this share (1.0 = never).",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule_not_blank(cls, value: str | None) -> str | None:
        # An empty schedule reads as "no schedule": `espbridge schedule` would skip the
        # sync without a word, when the author meant it to run (or left a template blank).
        if value is not None and not value.strip():
            raise ValueError(
                "is empty; use a cron expression (e.g. '*/10 * * * *'), or remove the key "
                "for a sync that is only run by hand (`espbridge run`)"
            )
        return value


class _EnvFirst(BaseSettings):
    """Settings read from the file, where `ESPBRIDGE__…` environment overrides win."""

    model_config = SettingsConfigDict(
        env_prefix="ESPBRIDGE__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    state: StateSettings = Field(default_factory=StateSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment overrides win over the file."""
        return (env_settings, init_settings)


class Config(_EnvFirst):
    """The whole espbridge config file.

    Any key can be overridden from the environment: `ESPBRIDGE__` + the key path joined
    by `__`, e.g. `ESPBRIDGE__DESTINATIONS__KLAVIYO__API_KEY` or `ESPBRIDGE__STATE__URL`.
    """

    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    syncs: dict[str, SyncSettings] = Field(default_factory=dict)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    triggers: list[TriggerSettings] = Field(default_factory=list)
    trigger_engine: TriggerEngineSettings = Field(default_factory=TriggerEngineSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    templates: list[TemplateCheck] = Field(
        default_factory=list, description="Templates `espbridge check --templates` inspects."
    )

    @model_validator(mode="after")
    def _references_exist(self) -> Config:
        for name, sync in self.syncs.items():
            if sync.source not in self.sources:
                raise ValueError(
                    f"syncs.{name}.source: no source named {sync.source!r}"
                    + _configured(self.sources)
                )
            for dest in sync.destinations:
                if dest not in self.destinations:
                    raise ValueError(
                        f"syncs.{name}.destinations: no destination named {dest!r}"
                        + _configured(self.destinations)
                    )
            # Listed twice, a destination would be built twice and sent every record twice.
            twice = sorted({d for d in sync.destinations if sync.destinations.count(d) > 1})
            if twice:
                raise ValueError(
                    f"syncs.{name}.destinations: {', '.join(map(repr, twice))} listed twice"
                )
        for index, trigger in enumerate(self.triggers):
            for dest in trigger.emit.destinations:
                if dest not in self.destinations:
                    raise ValueError(
                        f"triggers[{index}].emit.destinations: no destination named {dest!r}"
                        + _configured(self.destinations)
                    )
        validate_triggers(self.triggers, self.trigger_engine)
        return self


def secret_values(value: Any) -> set[str]:
    """Every `SecretStr` value in a config (or a section of one), for masking in messages."""
    if isinstance(value, SecretStr):
        return {value.get_secret_value()} - {""}
    if isinstance(value, BaseModel):
        value = [getattr(value, name) for name in type(value).model_fields]
    elif isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return {secret for item in value for secret in secret_values(item)}
    return set()


def config_secrets(config: Config) -> set[str]:
    """What to mask in messages: `SecretStr` values and passwords written in connection URLs."""
    found = secret_values(config) | url_secrets(config.state.url)
    for source in config.sources.values():
        url = getattr(source, "url", None)
        if isinstance(url, str):
            found |= url_secrets(url)
    return found


def _configured(section: dict[str, Any]) -> str:
    return f" (configured: {', '.join(section) or 'none'})"


def expand_env(value: Any, path: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; a missing VAR is an error.

    Raises:
        ConfigError: naming each key path and the variable it needs (never a value).
    """
    missing: dict[str, str] = {}
    expanded = _expand(value, path, missing)
    if missing:
        raise ConfigError("\n".join(_env_lines(missing)))
    return expanded


def _expand(
    value: Any, path: str, missing: dict[str, str], found: dict[str, str] | None = None
) -> Any:
    """`expand_env` that records each unset variable in `missing` (key path → name).

    `found` collects each value read from the environment (value → name), so that error
    messages can hide them: a validator may echo its input, and that input may be a secret.
    """
    if isinstance(value, dict):
        return {
            k: _expand(v, f"{path}.{k}" if path else k, missing, found) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", missing, found) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None and default is None:
            missing.setdefault(path, name)
            return match.group(0)
        if value is None:
            return str(default)
        if found is not None and len(value) >= MIN_MASKED:
            found[value] = name
        return value

    return _ENV_REF.sub(substitute, value)


def _hide_env_values(line: str, found: dict[str, str]) -> str:
    """`line` with environment values in its message (not its key path) shown as `${NAME}`."""
    location, sep, message = line.partition(": ")
    kinds = {str(m.model_fields["type"].default) for ms in _KINDS.values() for m in ms}
    # A section `type` read from the environment is vocabulary, not a secret: keep it legible.
    for value in sorted(set(found) - kinds, key=len, reverse=True):
        message = message.replace(value, f"${{{found[value]}}}")
    return location + sep + message


def _env_lines(missing: dict[str, str]) -> list[str]:
    return [f"{path}: environment variable {name} is not set" for path, name in missing.items()]


_KINDS: dict[str, tuple[type[StrictModel], ...]] = {
    "sources": (SegmentSourceSettings, WarehouseSourceSettings, InboxSourceSettings),
    "destinations": (KlaviyoSettings, MailchimpSettings),
}


def _kinds(section: str) -> str:
    """The `type` values a `[sources.*]` or `[destinations.*]` section accepts."""
    models = _KINDS.get(section, ())
    return ", ".join(repr(model.model_fields["type"].default) for model in models)


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """The TOML key path of an error location, walking the input alongside.

    Pydantic puts the chosen `type` of a tagged section into the location
    (`destinations.klaviyo.klaviyo.api_key`) and validator names (`function-after[…]`):
    neither is a key the user wrote, so both are left out. List indices read `[i]`.
    """
    path = ""
    node = data
    for depth, part in enumerate(loc):
        if str(part).startswith("function-"):
            continue
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        if depth == 2 and node is None and f"'{part}'" in _kinds(str(loc[0])).split(", "):
            continue  # the same, for a section that only an ESPBRIDGE__ override wrote
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            path += f".{part}" if path else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return path


def _from_environment_only(loc: tuple[Any, ...], data: Any) -> bool:
    """True when a `[sources.*]`/`[destinations.*]` section is absent from the file."""
    if len(loc) < 2 or not isinstance(data, dict):
        return False
    section = data.get(loc[0])
    return not isinstance(section, dict) or loc[1] not in section


def _describe(error: Any, data: Any = None) -> str:
    """One error line: `key.path: what was expected`; never the input value."""
    location = _location(tuple(error["loc"]), data)
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key (check the spelling against config.example.toml)"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        section = str(error["loc"][0]) if error["loc"] else ""
        found = error.get("ctx", {}).get("tag")
        what = f"unknown type {found!r}" if found is not None else "missing"
        location, message = f"{location}.type", f"{what}; expected one of {_kinds(section)}"
        if _from_environment_only(tuple(error["loc"]), data):
            # Environment variable names are matched in lower case, so an override of
            # `[destinations.Klaviyo]` lands in a new, incomplete `destinations.klaviyo`.
            message += (
                " (this section comes only from an ESPBRIDGE__ variable, and no file section "
                "has this name: overrides match section names in lower case)"
            )
    prefix = _PATH_PREFIX.match(message)
    if prefix:  # the validator named the key itself: join it to the location
        inner = prefix.group(1)
        location = (
            inner if not location or inner.startswith(f"{location}.") else f"{location}.{inner}"
        )
        message = message[prefix.end() :]
    return f"{location or '(top level)'}: {message}"


def parse_config(data: dict[str, Any], origin: str = "<config>") -> Config:
    """Validate already-parsed TOML data.

    Raises:
        ConfigError: naming `origin`, each bad key path and what was expected.
    """
    return _validate(Config, data, origin)


def parse_state_config(data: dict[str, Any], origin: str = "<config>") -> Config:
    """Validate only `[state]` (and its `ESPBRIDGE__STATE__…` overrides) of parsed TOML data.

    For commands that read the state store and contact no ESP and no source (`runs`,
    `rejects`, `triggers …`): an unset `${VAR}` of a destination or a source, or a mistake
    in a section they never read, does not stop them. The other sections of the config
    returned keep their defaults (empty).

    Raises:
        ConfigError: naming `origin`, each bad `state` key path and what was expected.
    """
    state = _validate(_StateOnly, {"state": data["state"]} if "state" in data else {}, origin)
    return Config.model_construct(state=state.state)


_SettingsT = TypeVar("_SettingsT", bound=BaseSettings)


def _validate(model: type[_SettingsT], data: dict[str, Any], origin: str) -> _SettingsT:
    """Expand `${VAR}`s in `data` and build `model`; every problem in one `ConfigError`."""
    # An `${VAR}` whose key an ESPBRIDGE__ variable sets needs no VAR: the override wins.
    overridden = _overridden_paths()
    missing: dict[str, str] = {}
    # Overrides (`ESPBRIDGE__…`) are read by pydantic-settings: hide their values as well.
    found = _override_values()
    expanded = _expand(data, "", missing, found)
    missing = {path: name for path, name in missing.items() if path not in overridden}
    try:
        config = model(**expanded)
    except ValidationError as exc:
        lines = _env_lines(missing)
        for error in exc.errors(include_url=False, include_input=False):
            line = _describe(error, expanded)
            # An unset variable already explains its key; the raw `${VAR}` left there may
            # fail validation too, which would only repeat the same problem less clearly.
            if line.split(": ", 1)[0] not in missing:
                lines.append(_hide_env_values(line, found))
        raise ConfigError(f"{origin}: invalid config:\n  " + "\n  ".join(lines)) from None
    except SettingsError as exc:
        # An ESPBRIDGE__… variable holding a section that is not valid JSON.
        raise ConfigError(
            f"{origin}: invalid environment override ({_settings_error(exc)})"
        ) from None
    if missing:
        raise ConfigError(f"{origin}: invalid config:\n  " + "\n  ".join(_env_lines(missing)))
    return config


class _StateOnly(_EnvFirst):
    """The `[state]` section alone, with the same environment overrides as `Config`."""

    model_config = SettingsConfigDict(extra="ignore")


def _overridden_paths() -> set[str]:
    """The key paths (`destinations.klaviyo.api_key`) an `ESPBRIDGE__…` variable sets.

    Names are matched in lower case, as pydantic-settings reads them; a variable holding a
    JSON table sets each key path inside it.
    """
    paths: set[str] = set()
    for name, _raw, parsed in _overrides():
        base = ".".join(name[len("ESPBRIDGE__") :].lower().split("__"))
        paths |= {".".join(filter(None, (base, inner))) for inner in _key_paths(parsed)}
    return paths


def _key_paths(value: Any) -> list[str]:
    """The dotted key paths of the leaves of a JSON value ("" for a leaf itself)."""
    if not isinstance(value, dict) or not value:
        return [""]
    return [
        ".".join(filter(None, (str(key), inner)))
        for key, item in value.items()
        for inner in _key_paths(item)
    ]


def _override_values() -> dict[str, str]:
    """Each `ESPBRIDGE__…` value, and each string inside one written as JSON (value → name)."""
    found: dict[str, str] = {}
    for name, raw, parsed in _overrides():
        for value in [raw, *_strings(parsed)]:
            if len(value) >= MIN_MASKED:
                found[value] = name
    return found


def _overrides() -> Iterator[tuple[str, str, Any]]:
    """Each `ESPBRIDGE__…` variable: (name, raw value, its JSON or None when not JSON)."""
    for name, raw in os.environ.items():
        if not name.upper().startswith("ESPBRIDGE__"):
            continue
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = None
        yield name, raw, parsed


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())  # keys are key names, not values
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _settings_error(exc: SettingsError) -> str:
    """pydantic-settings' own message names the field and the source, not the value."""
    field = re.search(r'field "([^"]+)"', str(exc))
    name = f"ESPBRIDGE__{field.group(1).upper()}" if field else "ESPBRIDGE_"
    return f"{name} or a {name}__… variable: not valid JSON (lists and tables are written as JSON)"


_STATE_ONLY: ContextVar[bool] = ContextVar("espbridge_state_only", default=False)


@contextmanager
def state_only() -> Iterator[None]:
    """Within it, `load_config` validates only `[state]` (see `parse_state_config`).

    `espbridge` enters it for the commands that only read the state store, including
    those of sub-apps that call `load_config` themselves (`triggers …`).
    """
    token = _STATE_ONLY.set(True)
    try:
        yield
    finally:
        _STATE_ONLY.reset(token)


def load_config(path: str | Path, *, only_state: bool | None = None) -> Config:
    """Read and validate a TOML config file.

    Args:
        path: The TOML file.
        only_state: Validate only `[state]` (`parse_state_config`); default: whether
            inside `state_only()`.

    Raises:
        ConfigError: for a missing file, bad TOML, or invalid keys.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    if _STATE_ONLY.get() if only_state is None else only_state:
        return parse_state_config(data, str(file))
    return parse_config(data, str(file))
