"""The Klaviyo destination: map Segment messages to action records, sink them, report outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from connectors.base import Customer, Outcome, Record
from connectors.http import gather_or_cancel
from connectors.klaviyo.actions import ACTIONS, add_to_list, subscribe, unsubscribe
from connectors.klaviyo.actions.base import MapContext, MapResult
from connectors.klaviyo.actions.subscribe import reoptins
from connectors.klaviyo.client import KlaviyoClient
from connectors.klaviyo.jobs import JobSink, ProfileSink
from connectors.klaviyo.settings import KlaviyoSettings
from connectors.klaviyo.sink import EventSink, Sink
from mapping.types import Message

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


SINK_OF = {
    "track_event": "events",
    "placed_order": "events",
    "upsert_profile": "profiles",
    "subscribe": "subscribe",
    "unsubscribe": "unsubscribe",
    "add_to_list": "add_to_list",
}
"""Which sink sends each action's records (Placed Order events travel with the rest)."""


class KlaviyoDestination:
    """Implements `connectors.base.Destination` for Klaviyo.

    Args:
        name: The `[destinations.<name>]` name.
        settings: Its config.
        transport: Optional httpx transport (tests: MockTransport; else the network).
        clock: Wall clock for the backfill freshness window (injectable for tests).
    """

    intent_log = False  # every request carries an idempotency key or is an upsert

    def __init__(
        self,
        name: str,
        settings: KlaviyoSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.client = KlaviyoClient(settings, transport)
        self.sinks: dict[str, Sink] = {
            "events": EventSink(self.client),
            "profiles": ProfileSink(self.client),
            "subscribe": JobSink(self.client, subscribe),
            "unsubscribe": JobSink(self.client, unsubscribe),
            "add_to_list": JobSink(self.client, add_to_list, polled=True),
        }
        self._outcomes: list[Outcome] = []
        self._renames = MapContext.build(settings, clock(), name).renames

    def map(self, message: Message, customer: Customer | None) -> MapResult:
        """Records (or mapping rejects) of every enabled action that takes this message."""
        ctx = MapContext(self.settings, self.clock(), self.name, self._renames)
        out: MapResult = []
        for name in self.settings.actions:
            module = ACTIONS[name]
            if module.subscribes(message, ctx):
                out.extend(module.map_message(message, customer, ctx))
        return out

    async def process_record(self, record: Record) -> None:
        """Queue a record; flush its sink when full, and any sink whose oldest record aged."""
        sink = self.sinks[SINK_OF[record.action]]
        sink.process_record(record)
        due = [s for s in self.sinks.values() if s.is_full or s.is_stale]
        for ready in due:
            self._outcomes.extend(await ready.flush())

    async def drain(self) -> list[Outcome]:
        """Send everything queued; every outcome since the last drain."""
        first = ("profiles", "events", "add_to_list")
        results = await gather_or_cancel(self.sinks[name].flush() for name in first)
        # Consent last and unsubscribe after subscribe: a withdrawal is always honoured,
        # unless the person opted in again after it (a re-subscribe is then sent last).
        subscribes = self.sinks["subscribe"]
        again = reoptins(subscribes.queue, self.sinks["unsubscribe"].queue)
        later = {id(r) for r in again}
        subscribes.queue = [r for r in subscribes.queue if id(r) not in later]
        results.append(await subscribes.flush())
        results.append(await self.sinks["unsubscribe"].flush())
        results.append(await subscribes.process_batch(again) if again else [])
        outcomes, self._outcomes = self._outcomes, []
        for result in results:
            outcomes.extend(result)
        return outcomes

    async def check(self) -> str:
        """`GET /api/accounts`: the account's name and id, or AuthFailed on 401."""
        response = await self.client.call("get_accounts")
        accounts = response.json().get("data") or []
        if not accounts:
            return f"Klaviyo at {self.settings.base_url}: reachable, no account returned"
        account = accounts[0]
        contact = (account.get("attributes") or {}).get("contact_information") or {}
        label = contact.get("organization_name") or contact.get("default_sender_name") or "account"
        return (
            f"Klaviyo {label} ({account.get('id')}) at {self.settings.base_url}, "
            f"revision {self.settings.revision}"
        )

    async def aclose(self) -> None:
        """Release connections."""
        await self.client.aclose()
