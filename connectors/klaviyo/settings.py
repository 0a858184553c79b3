"""Config of the Klaviyo destination."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import check_mapping_fields
from mapping.fields import FieldSpec
from mapping.settings import StrictModel
from mapping.transforms.phones import default_region

DEFAULT_BASE_URL = "https://a.klaviyo.com"
DEFAULT_REVISION = "2026-07-15"
ACTION_NAMES = (
    "track_event",
    "placed_order",
    "upsert_profile",
    "subscribe",
    "unsubscribe",
    "add_to_list",
)


class KlaviyoOAuth(StrictModel):
    """`[destinations.<name>.oauth]`: an OAuth app install instead of a private key."""

    token_url: str = Field(
        default="https://a.klaviyo.com/oauth/token", description="OAuth token endpoint."
    )
    client_id: str = Field(description="OAuth client id.")
    client_secret: SecretStr = Field(description="OAuth client secret.")
    refresh_token: SecretStr = Field(description="Refresh token of the install.")
    access_token: SecretStr | None = Field(
        default=None, description="A current access token; refreshed on the first 401."
    )


class RateTierSettings(StrictModel):
    """One rate tier: `burst` requests per second and `steady` per minute."""

    burst: int = Field(ge=1, description="Requests per second.")
    steady: int = Field(ge=1, description="Requests per minute.")


class BatchSettings(StrictModel):
    """`[destinations.<name>.batch]`: how the sinks batch."""

    max_age_seconds: float = Field(
        default=1.0, gt=0, description="Flush a queue once its oldest record is this old."
    )
    events_per_request: int = Field(
        default=1000, ge=1, le=1000, description="Events per bulk request (Klaviyo max 1,000)."
    )
    profiles_per_job: int = Field(
        default=10_000, ge=1, le=10_000, description="Profiles per bulk import job (max 10,000)."
    )
    bulk_threshold: int = Field(
        default=20,
        ge=1,
        description="Below this many queued items a flush sends single requests, not a bulk job.",
    )
    queue_limit: int = Field(
        default=20_000, ge=1, description="Queued records at which a sink flushes by itself."
    )
    bulk_concurrency: int = Field(
        default=8, ge=1, description="Bulk requests in flight at once (per sink)."
    )
    single_concurrency: int = Field(
        default=32, ge=1, description="Single-event requests in flight alongside bulk ones."
    )
    job_poll_seconds: float = Field(
        default=1.0, gt=0, description="Interval between bulk import job status polls."
    )
    job_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Give up polling a bulk import job after this long."
    )


class RetrySettings(StrictModel):
    """`[destinations.<name>.retry]`: backoff for 429, 5xx, timeouts, resets."""

    max_attempts: int = Field(default=6, ge=1, description="Attempts per request, first included.")
    initial_seconds: float = Field(default=0.5, gt=0, description="First backoff delay.")
    max_delay_seconds: float = Field(default=30.0, gt=0, description="Cap of one backoff delay.")


class ConsentSettings(StrictModel):
    """`[destinations.<name>.consent]`: when a profile may be subscribed."""

    paths: list[str] = Field(
        default_factory=lambda: [
            "traits.email_consent",
            "traits.marketing_consent",
            "context.traits.email_consent",
            "context.traits.marketing_consent",
            "properties.email_consent",
            "properties.marketing_consent",
            "traits.subscribe",
        ],
        description="Where the consent flag is read, first non-blank wins.",
    )
    subscribed_values: list[str] = Field(
        default_factory=lambda: ["true", "subscribed", "yes", "opted_in", "1"],
        description="Values (case-insensitive) that mean the person consented.",
    )
    unsubscribed_values: list[str] = Field(
        default_factory=lambda: ["false", "unsubscribed", "no", "opted_out", "0"],
        description="Values (case-insensitive) that mean the person withdrew consent.",
    )
    channels: list[Literal["email", "sms"]] = Field(
        default=["email"],
        description="Channels subscribed on consent (sms needs a valid phone).",
    )


class KlaviyoSettings(StrictModel):
    """`[destinations.<name>]` with `type = "klaviyo"`."""

    type: Literal["klaviyo"] = "klaviyo"
    api_key: SecretStr | None = Field(default=None, description="Private API key (pk_…).")
    oauth: KlaviyoOAuth | None = Field(default=None, description="OAuth credentials instead.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL, description="API base URL (the sandbox's URL in tests)."
    )
    revision: str = Field(default=DEFAULT_REVISION, description="Pinned API revision header.")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    actions: list[str] = Field(
        default_factory=lambda: list(ACTION_NAMES), description="Actions this destination runs."
    )
    metric_names: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Segment event → Klaviyo metric renames (merged over the defaults).",
    )
    mapping: dict[str, dict[str, FieldSpec]] = Field(
        default_factory=dict,
        description="Per-action field overrides: `[destinations.<name>.mapping.<action>]`.",
    )
    freshness_days: float = Field(
        default=7.0, gt=0, description="Older events are sent with backfill=true (no flows)."
    )
    phone_default_region: str | None = Field(
        default=None, description="ISO country for phones without +country code, e.g. US."
    )
    list_id: str | None = Field(default=None, description="Default list for subscribe jobs.")
    custom_source: str = Field(
        default="espbridge", description="custom_source on subscribe jobs (shown in Klaviyo)."
    )
    unset_on_null: list[str] = Field(
        default_factory=list,
        description=(
            "Traits a null clears: properties by meta.patch_properties.unset, standard"
            " attributes (first_name, title…) by sending null."
        ),
    )
    consent: ConsentSettings = Field(default_factory=ConsentSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    rate_limits: dict[str, RateTierSettings] = Field(
        default_factory=dict,
        description="Override tiers by operation id (create_event) or tier name (M, XL).",
    )
    spec_path: str | None = Field(
        default=None,
        description="Klaviyo OpenAPI file to read x-klaviyo-ratelimit-* from (else the table).",
    )
    time_scale: float = Field(
        default=1.0, gt=0, description="Divide rate windows (time-scaled sandboxes only)."
    )

    @field_validator("phone_default_region")
    @classmethod
    def _known_region(cls, region: str | None) -> str | None:
        # An unknown region would make every local number unparseable: each phone
        # would be dropped with a note instead of the config being refused once.
        if region is None or not region.strip():
            return None  # "" is how config.example.toml spells "no default region"
        return default_region(region)

    @model_validator(mode="after")
    def _known_actions(self) -> KlaviyoSettings:
        for name in [*self.actions, *self.mapping]:
            if name not in ACTION_NAMES:
                raise ValueError(f"unknown action {name!r}; expected one of {ACTION_NAMES}")
        # An action's fields are the keys of its DEFAULTS. Imported here: the action
        # modules import this one.
        from connectors.klaviyo.actions import ACTIONS

        fields = {name: module.DEFAULTS.keys() for name, module in ACTIONS.items()}
        check_mapping_fields(type(self).__name__, self.mapping, fields)
        return self
