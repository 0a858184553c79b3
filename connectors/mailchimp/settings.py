"""Config of the Mailchimp destination."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import check_mapping_fields
from mapping.fields import FieldSpec
from mapping.settings import StrictModel
from mapping.transforms.phones import default_region

ACTION_NAMES = ("upsert_member", "tags", "member_event", "journey_trigger")
MergeFieldType = Literal[
    "text",
    "number",
    "address",
    "phone",
    "date",
    "birthday",
    "url",
    "imageurl",
    "radio",
    "dropdown",
    "zip",
]
_KEY = re.compile(r"^[^-\s]+-(?P<dc>[a-z]+[0-9]+)$")
_MERGE_TAG = re.compile(r"^[A-Z][A-Z0-9_]{0,9}$")
# An audience id goes into every URL path: anything but letters and digits (a `/`,
# `?`, `..`) would steer the call to another endpoint.
_AUDIENCE_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")


def is_audience_id(value: str) -> bool:
    """True for a plausible audience (list) id: letters and digits, e.g. `a1b2c3d4e5`."""
    return _AUDIENCE_ID.match(value) is not None


def _merge_tag_hint(action: str, key: str) -> str | None:
    """Merge fields have their own table: say so for a key written like a merge tag."""
    if _MERGE_TAG.match(key) is None:
        return None
    return "audience fields are mapped by merge tag under [destinations.<name>.merge_fields]"


class MergeFieldSpec(FieldSpec):
    """`[destinations.<name>.merge_fields.<TAG>]`: where one audience field comes from.

    Besides the `FieldSpec` keys (`path`, `value`, `fallback`, `required`, `transform`)
    it declares the field's Mailchimp type, so values are converted before sending and
    `espbridge check` can compare the declaration with the audience.
    """

    type: MergeFieldType = Field(default="text", description="The merge field's type.")
    date_format: str | None = Field(
        default=None,
        description="For date/birthday: MM/DD/YYYY, DD/MM/YYYY, YYYY-MM-DD, MM/DD or DD/MM.",
    )
    default_country: str | None = Field(
        default=None,
        description="ISO 3166 two-letter country (e.g. US) for addresses without one "
        "and phones without +code.",
    )
    phone_format: Literal["international", "US"] = Field(
        default="international",
        description="For phone: `international` (E.164) or `US` ((###) ###-####).",
    )

    @field_validator("default_country")
    @classmethod
    def _known_country(cls, country: str | None) -> str | None:
        # Mailchimp takes a country as a two-character ISO 3166 code and files one it does
        # not know under US (its contact `country`: "Defaults to US if invalid"), and
        # phonenumbers reads no local number with an unknown region: refuse the code once
        # here rather than misfile every address or reject every phone without +code.
        if country is None or not country.strip():
            return None  # blank is no default, as for Klaviyo's phone_default_region
        return default_region(country)


def default_merge_fields() -> dict[str, MergeFieldSpec]:
    """FNAME and LNAME from the Segment spec traits (present on a new audience)."""
    return {
        "FNAME": MergeFieldSpec(path=["traits.first_name", "traits.firstName"]),
        "LNAME": MergeFieldSpec(path=["traits.last_name", "traits.lastName"]),
    }


class JourneyStep(StrictModel):
    """A Customer Journey step with the "Customer Journeys API" starting point."""

    journey_id: int = Field(ge=1, description="The journey id from the step's API URL.")
    step_id: int = Field(ge=1, description="The step id from the step's API URL.")


class BatchSettings(StrictModel):
    """`[destinations.<name>.batch]`: how the sink groups and sends records."""

    max_records: int = Field(
        default=2000, ge=1, description="Flush once this many records are queued."
    )
    max_age_seconds: float = Field(
        default=1.0, gt=0, description="Flush once the oldest queued record is this old."
    )
    members_per_request: int = Field(
        default=500, ge=1, le=500, description="Members per batch-subscribe call (max 500)."
    )
    batch_subscribe_min: int = Field(
        default=20,
        ge=1,
        description="Use batch subscribe when a flush has at least this many upserts.",
    )
    operations_threshold: int | None = Field(
        default=None,
        ge=1,
        description="Send a flush through POST /batches when it holds at least this many "
        "records (large backfills); unset = never.",
    )
    operations_per_batch: int = Field(
        default=1000, ge=1, le=1000, description="Operations per POST /batches request (max 1000)."
    )
    poll_seconds: float = Field(default=2.0, gt=0, description="Batch status poll interval.")
    batch_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="Give up on a batch after this long."
    )


class RetrySettings(StrictModel):
    """`[destinations.<name>.retry]`: backoff for 429, throttling 403, 5xx, network errors."""

    max_attempts: int = Field(default=6, ge=1, description="Attempts per request, first included.")
    initial_seconds: float = Field(default=0.5, gt=0, description="First backoff delay.")
    max_delay_seconds: float = Field(default=30.0, gt=0, description="Cap of one backoff delay.")
    uncertain_resends: int = Field(
        default=3,
        ge=0,
        description="Times an event whose answer was lost is checked and sent again.",
    )


class MailchimpSettings(StrictModel):
    """`[destinations.<name>]` with `type = "mailchimp"`."""

    type: Literal["mailchimp"] = "mailchimp"
    api_key: SecretStr | None = Field(default=None, description="API key `<key>-<dc>`.")
    oauth_token: SecretStr | None = Field(
        default=None, description="OAuth access token instead of an API key (needs `dc`)."
    )
    dc: str | None = Field(
        default=None, description="Data center, e.g. us19 (default: the API key's suffix)."
    )
    base_url: str | None = Field(
        default=None,
        description="Override of https://<dc>.api.mailchimp.com/3.0 (the sandbox's URL in tests).",
    )
    list_id: str = Field(description="Audience (list) id.")
    status_if_new: Literal["subscribed", "pending", "unsubscribed", "transactional"] = Field(
        default="subscribed",
        description="Status of people new to the audience; existing members keep theirs.",
    )
    actions: list[str] = Field(
        default_factory=lambda: list(ACTION_NAMES), description="Actions this destination runs."
    )
    mapping: dict[str, dict[str, FieldSpec]] = Field(
        default_factory=dict,
        description="Per-action field overrides: `[destinations.<name>.mapping.<action>]`.",
    )
    merge_fields: dict[str, MergeFieldSpec] = Field(
        default_factory=default_merge_fields,
        description="Audience fields by merge tag; replaces the FNAME/LNAME defaults.",
    )
    static_tags: list[str] = Field(
        default_factory=list, description="Tags added to every member espbridge upserts."
    )
    events: list[str] | None = Field(
        default=None, description="Track events sent as member events (unset = all)."
    )
    journeys: dict[str, JourneyStep] = Field(
        default_factory=dict,
        description="Track event name → the journey step it triggers.",
    )
    journey_events_as_member_events: bool = Field(
        default=False, description="Also send journey-trigger events as member events."
    )
    journey_unconfirmed: Literal["reject", "resend"] = Field(
        default="reject",
        description="A trigger whose delivery cannot be confirmed: report it (reject) or "
        "send it again (resend, may enter the member twice).",
    )
    is_syncing: bool = Field(
        default=False, description="Send events with is_syncing=true (they start no automation)."
    )
    skip_merge_validation: bool = Field(
        default=False, description="Let Mailchimp accept members without required merge fields."
    )
    timeout_seconds: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    max_connections: int = Field(
        default=10, ge=1, le=10, description="Simultaneous connections per API key (max 10)."
    )
    batch: BatchSettings = Field(default_factory=BatchSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)

    @model_validator(mode="after")
    def _consistent(self) -> MailchimpSettings:
        if (self.api_key is None) == (self.oauth_token is None):
            raise ValueError("set exactly one of api_key and oauth_token")
        key = self.api_key
        if key is not None and self.dc is None and _KEY.match(key.get_secret_value()) is None:
            raise ValueError("api_key: expected `<key>-<dc>`, e.g. …-us19 (or set dc)")
        if self.oauth_token is not None and self.dc is None and self.base_url is None:
            raise ValueError("oauth_token needs dc (the account's data center, e.g. us19)")
        if not is_audience_id(self.list_id):
            raise ValueError(f"list_id: not a Mailchimp audience id: {self.list_id[:80]!r}")
        for tag in self.static_tags:
            if not tag.strip() or len(tag.strip()) > 100:  # Mailchimp: tag names 1-100
                raise ValueError(f"static_tags: {tag[:60]!r} must be 1-100 characters")
        for name in [*self.actions, *self.mapping]:
            if name not in ACTION_NAMES:
                raise ValueError(f"unknown action {name!r}; expected one of {ACTION_NAMES}")
        # Imported here: the action modules import this one.
        from connectors.mailchimp.destination import ACTIONS

        fields = {name: module.FIELDS.keys() for name, module in ACTIONS.items()}
        check_mapping_fields(type(self).__name__, self.mapping, fields, _merge_tag_hint)
        return self

    @property
    def data_center(self) -> str:
        """The data center: `dc`, else the API key's `-dc` suffix."""
        if self.dc:
            return self.dc
        if self.api_key is not None:
            match = _KEY.match(self.api_key.get_secret_value())
            if match:
                return match["dc"]
        return "us1"

    @property
    def api_root(self) -> str:
        """The API root URL, without a trailing slash."""
        root = self.base_url or f"https://{self.data_center}.api.mailchimp.com/3.0"
        return root.rstrip("/")
