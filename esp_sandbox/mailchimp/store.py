"""Ground-truth state of the fake Mailchimp account: audiences, members, journeys, batches."""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from esp_sandbox.context import SandboxContext

SEED_LIST_ID = "a1b2c3d4e5"
SEED_JOURNEY_ID = 1
SEED_STEP_ID = 1


def subscriber_hash(email: str) -> str:
    """MD5 of the lower-cased address, as Mailchimp keys members."""
    return hashlib.md5(email.lower().encode("utf-8")).hexdigest()


def iso(moment: datetime) -> str:
    """Mailchimp's timestamp form: seconds precision with a +00:00 offset."""
    return moment.replace(microsecond=0).isoformat()


@dataclass
class MergeField:
    """One audience field (merge tag) of a list."""

    merge_id: int
    tag: str
    name: str
    type: str
    required: bool = False
    default_value: str = ""
    public: bool = True
    display_order: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    help_text: str = ""

    def to_json(self, list_id: str) -> dict[str, Any]:
        """As `GET /lists/{id}/merge-fields` renders it."""
        return {
            "merge_id": self.merge_id,
            "tag": self.tag,
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default_value": self.default_value,
            "public": self.public,
            "display_order": self.display_order,
            "options": dict(self.options),
            "help_text": self.help_text,
            "list_id": list_id,
            "_links": [],
        }


@dataclass
class MemberEvent:
    """One event posted to a member."""

    name: str
    properties: dict[str, str]
    occurred_at: str
    is_syncing: bool
    received_at: str


@dataclass
class Member:
    """One list member (contact)."""

    email: str
    status: str
    contact_id: str
    unique_email_id: str
    web_id: int
    created_at: str
    last_changed: str
    email_type: str = "html"
    merge_fields: dict[str, Any] = field(default_factory=dict)
    interests: dict[str, bool] = field(default_factory=dict)
    language: str = ""
    vip: bool = False
    ip_signup: str = ""
    timestamp_signup: str = ""
    ip_opt: str = ""
    timestamp_opt: str = ""
    location: dict[str, float] = field(default_factory=dict)
    tags: dict[str, tuple[int, str]] = field(default_factory=dict)
    events: list[MemberEvent] = field(default_factory=list)
    status_history: list[str] = field(default_factory=list)


@dataclass
class Audience:
    """One list (audience) with its fields, members and tag registry."""

    id: str
    web_id: int
    name: str
    date_created: str
    double_optin: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    merge_fields: dict[str, MergeField] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)
    tag_ids: dict[str, int] = field(default_factory=dict)
    next_merge_id: int = 1

    def tag_id(self, name: str) -> int:
        """The list-wide id of a tag, creating it when new."""
        if name not in self.tag_ids:
            self.tag_ids[name] = 1000 + len(self.tag_ids) + 1
        return self.tag_ids[name]


@dataclass
class Journey:
    """A Customer Journey whose steps have the 'Customer Journeys API' starting point."""

    id: int
    name: str
    list_id: str
    steps: set[int]


@dataclass
class JourneyTrigger:
    """One accepted trigger call."""

    journey_id: int
    step_id: int
    email: str
    at: str


@dataclass
class BatchResult:
    """The outcome of one batch operation, as in the results archive."""

    status_code: int
    operation_id: str | None
    response: str


@dataclass
class Batch:
    """One `POST /batches` request and its progress."""

    id: str
    operations: list[dict[str, Any]]
    submitted_at: str
    submitted_mono: float
    base_url: str
    status: str = "pending"
    completed_at: str = ""
    results: list[BatchResult] = field(default_factory=list)
    archive: bytes = b""


class MailchimpStore:
    """All state, guarded by one re-entrant lock (uvicorn thread and test threads)."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.lock = threading.RLock()
        self.lists: dict[str, Audience] = {}
        self.journeys: dict[int, Journey] = {}
        self.triggers: list[JourneyTrigger] = []
        self.batches: dict[str, Batch] = {}
        self.latency_seconds = 0.0
        self._web_ids = 0

    def now(self) -> str:
        """Current sandbox time as Mailchimp renders it."""
        return iso(self.ctx.clock.now())

    def new_hex(self, length: int = 10) -> str:
        """A random lower-hex id from the seeded generator."""
        return "".join(self.ctx.rng.choice("0123456789abcdef") for _ in range(length))

    def new_uuid(self) -> str:
        """A UUID4 from the seeded generator (problem `instance`, request ids)."""
        return str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))

    def next_web_id(self) -> int:
        """A numeric web id (lists, members)."""
        self._web_ids += 1
        return 100000 + self._web_ids

    def audience(self, list_id: str) -> Audience | None:
        """The list with this id, or None."""
        return self.lists.get(list_id)
