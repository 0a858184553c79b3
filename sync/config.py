"""The TOML config: load, expand `${ENV_VAR}` references, validate strictly.

Every section is a typed model; an unknown key is an error, and a validation error
names the file, the key path and what was expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.klaviyo.settings import KlaviyoSettings
from connectors.mailchimp.settings import MailchimpSettings
from connectors.segment.settings import SegmentSourceSettings
from connectors.warehouse.settings import WarehouseSourceSettings
from mapping.identity.settings import IdentitySettings
from mapping.settings import StrictModel
from mapping.templates import TemplateCheck
from sync.ingest.settings import InboxSourceSettings, IngestSettings
from sync.triggers.settings import TriggerEngineSettings, TriggerSettings, validate_triggers

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

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


class Config(BaseSettings):
    """The whole espbridge config file.

    Any key can be overridden from the environment: `ESPBRIDGE__` + the key path joined
    by `__`, e.g. `ESPBRIDGE__DESTINATIONS__KLAVIYO__API_KEY` or `ESPBRIDGE__STATE__URL`.
    """

    model_config = SettingsConfigDict(
        env_prefix="ESPBRIDGE__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    state: StateSettings = Field(default_factory=StateSettings)
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

    @model_validator(mode="after")
    def _references_exist(self) -> Config:
        for name, sync in self.syncs.items():
            if sync.source not in self.sources:
                raise ValueError(f"syncs.{name}.source: no source named {sync.source!r}")
            for dest in sync.destinations:
                if dest not in self.destinations:
                    raise ValueError(f"syncs.{name}.destinations: no destination named {dest!r}")
        for index, trigger in enumerate(self.triggers):
            for dest in trigger.emit.destinations:
                if dest not in self.destinations:
                    raise ValueError(
                        f"triggers[{index}].emit.destinations: no destination named {dest!r}"
                    )
        validate_triggers(self.triggers, self.trigger_engine)
        return self


def expand_env(value: Any, path: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; a missing VAR is an error."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name, default)
        if found is None:
            raise ConfigError(f"{path}: environment variable {name} is not set")
        return found

    return _ENV_REF.sub(substitute, value)


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config.example.toml)"
    return f"{location or '(top level)'}: {message}"


def parse_config(data: dict[str, Any], origin: str = "<config>") -> Config:
    """Validate already-parsed TOML data.

    Raises:
        ConfigError: naming `origin`, each bad key path and what was expected.
    """
    try:
        return Config(**expand_env(data))
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors(include_url=False)]
        raise ConfigError(f"{origin}: invalid config:\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file.

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
    return parse_config(data, str(file))
