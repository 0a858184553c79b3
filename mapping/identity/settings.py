"""`[identity]`: who is who, as rules a user can read and override in TOML."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from mapping.paths import compile_path
from mapping.settings import StrictModel
from mapping.transforms.phones import default_region

BUILTIN_KINDS = (
    "user_id",
    "email",
    "phone",
    "klaviyo_profile_id",
    "mailchimp_subscriber_hash",
    "anonymous_id",
)
"""Identifier kinds every graph knows, in default priority order."""

FORMER_USER_ID = "former_user_id"
"""A user id an alias call renamed (`mapping.identity.aliases`): a kind every graph
knows, ranked right after `user_id` whatever the priority, so an alias's new user id
always anchors the merge and names the customer."""

JUNK_VALUES = (
    "",
    "0",
    "-1",
    "null",
    "nil",
    "none",
    "undefined",
    "nan",
    "n/a",
    "na",
    "unknown",
    "anonymous",
    "test",
    "test@test.com",
    "test@example.com",
    "email@example.com",
    "noemail@noemail.com",
    "[object object]",
)
"""Values never merged on, whatever their kind (compared trimmed and lower-cased)."""

MAX_KIND_LENGTH = 64
"""Longest identifier kind name: the store's `kind` columns hold 64 characters."""


def _default_limits() -> dict[str, int]:
    return {
        "user_id": 1,
        "email": 3,
        "phone": 2,
        "anonymous_id": 50,
        "klaviyo_profile_id": 1,
        "mailchimp_subscriber_hash": 3,
    }


class ProfilesApiSettings(StrictModel):
    """`[identity.profiles_api]`: optional enrichment from Segment's Profiles API."""

    space_id: str = Field(description="Segment Unify space id (`/v1/spaces/<space_id>/`).")
    access_token: SecretStr = Field(description="Profiles API access token (Basic auth user).")
    base_url: str = Field(
        default="https://profiles.segment.com",
        description="API base; https://profiles.euw1.segment.com for EU spaces.",
    )
    requests_per_second: int = Field(
        default=100, ge=1, le=100, description="Client-side rate limit (Segment allows 100/s)."
    )
    page_limit: int = Field(default=100, ge=1, le=100, description="Items per page (1-100).")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per-request timeout.")
    max_lookups: int = Field(
        default=1000, ge=0, description="At most this many unresolved customers looked up a run."
    )


class IdentitySettings(StrictModel):
    """`[identity]`: identifier sources, merge limits, junk values and ESP keys."""

    limits: dict[str, int] = Field(
        default_factory=_default_limits,
        description="Most identifiers of a kind one customer may have; a merge that would "
        "exceed it is refused and recorded as a conflict. Kinds not listed are unlimited.",
    )
    ignore_values: list[str] = Field(
        default_factory=list,
        description="Values never merged on, added to the built-in list (null, undefined, "
        "test@test.com, none, 0, empty…).",
    )
    email_paths: list[str] = Field(
        default_factory=lambda: ["traits.email", "properties.email"],
        description="Where emails are read; every non-junk valid address found is used. "
        "`traits` is an identify call's traits, else the message's context.traits.",
    )
    phone_paths: list[str] = Field(
        default_factory=lambda: ["traits.phone", "properties.phone"],
        description="Where phone numbers are read (normalized to E.164).",
    )
    phone_default_region: str | None = Field(
        default=None,
        description="ISO 3166 country (any case) for numbers written without +country "
        "code, e.g. US or GB; one phonenumbers does not know is a config error.",
    )
    keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Extra identifier kinds (warehouse keys) and the paths they are read from, "
        'e.g. crm_id = ["traits.crm_id", "properties.crm_id"].',
    )
    alias_previous_id: Literal["anonymous_id", "user_id"] = Field(
        default="anonymous_id",
        description="What an alias call's previousId is (Segment: usually the anonymousId). "
        "With user_id, an alias from one user id to another renames the customer: the "
        "previousId is kept as a former_user_id (not counted against the user_id limit, "
        "still leading to the customer) and the userId becomes its user_id.",
    )
    priority: list[str] = Field(
        default_factory=lambda: list(BUILTIN_KINDS),
        description="Kinds from most to least telling; the customer id is derived from the "
        "component's first identifier in this order. Unlisted extra keys rank just before "
        "anonymous_id.",
    )
    esp_keys: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "klaviyo": ["user_id", "email", "phone"],
            "mailchimp": ["email"],
        },
        description="Per ESP, the identifier kinds it keys profiles on, first present wins "
        "(Klaviyo external_id ← user_id before email before phone).",
    )
    track_traits: bool = Field(
        default=True, description="Keep each customer's latest traits (identify and context)."
    )
    profiles_api: ProfilesApiSettings | None = Field(
        default=None, description="Enrich customers the local graph cannot resolve."
    )

    @field_validator("phone_default_region")
    @classmethod
    def _known_region(cls, region: str | None) -> str | None:
        return None if region is None else default_region(region)

    @field_validator("email_paths", "phone_paths")
    @classmethod
    def _readable_paths(cls, paths: list[str]) -> list[str]:
        # A path that does not parse would fail every message of every run.
        for path in paths:
            compile_path(path)
        return paths

    @field_validator("keys")
    @classmethod
    def _storable_kinds(cls, keys: dict[str, list[str]]) -> dict[str, list[str]]:
        # The kind is a key of every identifier row: one the store cannot hold would
        # fail the run's first write, not the config check.
        for kind, paths in keys.items():
            if not kind.strip() or len(kind) > MAX_KIND_LENGTH:
                raise ValueError(
                    f"{kind[:80]!r}: a kind name needs 1 to {MAX_KIND_LENGTH} characters"
                )
            for path in paths:
                try:
                    compile_path(path)
                except ValueError as exc:
                    raise ValueError(f"{kind}: {exc}") from None
        return keys

    @model_validator(mode="after")
    def _consistent(self) -> IdentitySettings:
        known = {*BUILTIN_KINDS, FORMER_USER_ID, *self.keys}
        if FORMER_USER_ID in self.priority:
            raise ValueError(f"priority: {FORMER_USER_ID} always ranks right after user_id")
        for kind in [*self.limits, *self.priority]:
            if kind not in known:
                raise ValueError(f"unknown identifier kind {kind!r}; known: {sorted(known)}")
        for kind, limit in self.limits.items():
            if limit < 1:
                raise ValueError(f"limits.{kind}: must be at least 1")
        for esp, kinds in self.esp_keys.items():
            for kind in kinds:
                if kind not in known:
                    raise ValueError(f"esp_keys.{esp}: unknown identifier kind {kind!r}")
        return self

    def ranking(self) -> dict[str, int]:
        """Kind → rank (0 = most telling); kinds missing from `priority` rank after it.

        `former_user_id` ranks right after `user_id`.
        """
        order = list(self.priority)
        extra = [k for k in self.keys if k not in order]
        anon = order.index("anonymous_id") if "anonymous_id" in order else len(order)
        order[anon:anon] = extra
        order += [k for k in BUILTIN_KINDS if k not in order]
        order.insert(order.index("user_id") + 1, FORMER_USER_ID)
        return {kind: rank for rank, kind in enumerate(order)}

    def junk(self) -> frozenset[str]:
        """Every value never merged on, trimmed and lower-cased."""
        return frozenset(v.strip().lower() for v in (*JUNK_VALUES, *self.ignore_values))
