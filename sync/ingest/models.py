"""Request and response shapes of the ingest API, for its OpenAPI document.

The routes read the raw body themselves (size limits, gzip, signatures, per-message
errors), so these models document the API rather than parse it: `sync.ingest.validate`
decides, with `mapping.message.parse_message`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import models_json_schema

_ID = Field(
    min_length=1, max_length=100, pattern=r"\S", description="Unique per message; deduplicates."
)


class _Common(BaseModel):
    """Fields every Segment call may carry; other keys are kept as sent."""

    model_config = ConfigDict(extra="allow")

    messageId: str = _ID
    userId: str | None = Field(default=None, description="Needed unless anonymousId is set.")
    anonymousId: str | None = Field(default=None, description="Needed unless userId is set.")
    timestamp: str | None = Field(
        default=None, description="ISO-8601 event time; defaults to receivedAt."
    )
    originalTimestamp: str | None = None
    sentAt: str | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class _Track(_Common):
    event: str = Field(min_length=1, pattern=r"\S")
    properties: dict[str, Any] | None = None


class _Identify(_Common):
    traits: dict[str, Any] | None = None


class _Page(_Common):
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class _Screen(_Common):
    name: str | None = None
    properties: dict[str, Any] | None = None


class _Alias(_Common):
    previousId: str = Field(min_length=1)


class _Group(_Common):
    groupId: str = Field(min_length=1)
    traits: dict[str, Any] | None = None


class TrackMessage(_Track):
    """A track call in a batch."""

    type: Literal["track"]


class IdentifyMessage(_Identify):
    """An identify call in a batch."""

    type: Literal["identify"]


class PageMessage(_Page):
    """A page call in a batch."""

    type: Literal["page"]


class ScreenMessage(_Screen):
    """A screen call in a batch."""

    type: Literal["screen"]


class AliasMessage(_Alias):
    """An alias call in a batch."""

    type: Literal["alias"]


class GroupMessage(_Group):
    """A group call in a batch."""

    type: Literal["group"]


SegmentMessage = Annotated[
    TrackMessage | IdentifyMessage | PageMessage | ScreenMessage | AliasMessage | GroupMessage,
    Field(discriminator="type"),
]


class _Call(BaseModel):
    writeKey: str | None = Field(default=None, description="Instead of Basic auth.")


class TrackCall(_Track, _Call):
    """Body of `POST /v1/track`."""

    type: Literal["track"] | None = None


class IdentifyCall(_Identify, _Call):
    """Body of `POST /v1/identify`."""

    type: Literal["identify"] | None = None


class PageCall(_Page, _Call):
    """Body of `POST /v1/page`."""

    type: Literal["page"] | None = None


class ScreenCall(_Screen, _Call):
    """Body of `POST /v1/screen`."""

    type: Literal["screen"] | None = None


class AliasCall(_Alias, _Call):
    """Body of `POST /v1/alias`."""

    type: Literal["alias"] | None = None


class GroupCall(_Group, _Call):
    """Body of `POST /v1/group`."""

    type: Literal["group"] | None = None


class BatchRequest(_Call):
    """Body of `POST /v1/batch`, as Segment libraries send it."""

    model_config = ConfigDict(extra="allow")

    batch: list[SegmentMessage] = Field(max_length=2500)
    sentAt: str | None = None
    context: dict[str, Any] | None = Field(
        default=None, description="Context of every call; a call's own keys win."
    )
    integrations: dict[str, Any] | None = Field(
        default=None, description="Integrations of every call; a call's own keys win."
    )


class WebhookBody(RootModel[SegmentMessage | list[SegmentMessage]]):
    """Body of `POST /v1/webhook`: one Spec message, or an array of them (batched)."""


CALL_MODELS: dict[str, type[BaseModel]] = {
    "track": TrackCall,
    "identify": IdentifyCall,
    "page": PageCall,
    "screen": ScreenCall,
    "alias": AliasCall,
    "group": GroupCall,
}


class Accepted(BaseModel):
    """200: every message is in the inbox (new or already there)."""

    success: Literal[True] = True
    stored: int = Field(description="Messages newly stored.")
    duplicates: int = Field(description="Messages whose messageId was already stored.")


class RefusedMessage(BaseModel):
    """One message refused, by its index in the batch."""

    index: int
    messageId: str | None
    field: str
    reason: str


class SegmentError(BaseModel):
    """A non-2xx answer, in the `{code, message}` shape Segment libraries read.

    For `invalid_messages`, the messages not listed in `rejected` were stored: a
    client must not resend them (resending is harmless: stored once per messageId).
    """

    code: str
    message: str
    stored: int = 0
    duplicates: int = 0
    rejected: list[RefusedMessage] = Field(default_factory=list)


class Health(BaseModel):
    """`GET /healthz`."""

    status: Literal["ok", "unavailable"]
    inbox_max_id: int | None = None


def request_schemas() -> dict[str, Any]:
    """JSON schemas of the request bodies, keyed by model name, refs into components."""
    models: list[type[BaseModel]] = [BatchRequest, WebhookBody, *CALL_MODELS.values()]
    _, top = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    defs: dict[str, Any] = top["$defs"]
    return defs
