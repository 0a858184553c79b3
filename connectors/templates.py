"""Fetch the templates a sync names, and preflight them (`espbridge check --templates`).

Klaviyo: `GET /api/templates` (JSON:API, `links.next` paging, page size at most 10),
matched by id or exact name. Mailchimp: `GET /templates/{id}/default-content` (the
editable sections) or `GET /campaigns/{id}/content` (`html`, `plain_text`, variates).
The transport is injected, so tests use `httpx.MockTransport` or the sandbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.errors import ESPError, RejectedPayload
from connectors.http import RetryPolicy, send
from connectors.klaviyo.settings import KlaviyoSettings
from connectors.mailchimp.settings import MailchimpSettings
from mapping.templates import Dialect, Problem, TemplateCheck, check_template

DestinationSettings = KlaviyoSettings | MailchimpSettings
_POLICY = RetryPolicy(max_attempts=4, initial=0.5, max_delay=10.0)


@dataclass(frozen=True, slots=True)
class TemplateText:
    """A fetched template: its ESP, a readable reference and all its text."""

    dialect: Dialect
    ref: str
    text: str


@dataclass(frozen=True, slots=True)
class Unreachable(Problem):
    """A template that could not be read because the ESP could not be reached, kept
    failing or refused the credentials: nothing in the mapping or template is known wrong.

    (A template the ESP does not have, or one the config cannot name, is a plain `Problem`.)
    """


def _parse_error(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300], None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]
        return str(first.get("detail") or first.get("title")), None
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300], None
    return str(body)[:300], None


async def _get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await send(lambda: client.get(url, params=params or None), _parse_error, _POLICY)
    return response.json()


def _klaviyo_client(
    settings: KlaviyoSettings, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    if settings.api_key is not None:
        auth = f"Klaviyo-API-Key {settings.api_key.get_secret_value()}"
    elif settings.oauth is not None and settings.oauth.access_token is not None:
        auth = f"Bearer {settings.oauth.access_token.get_secret_value()}"
    else:
        raise ValueError("needs api_key (or an OAuth access_token) to read templates")
    headers = {
        "Authorization": auth,
        "revision": settings.revision,
        "accept": "application/vnd.api+json",
    }
    return httpx.AsyncClient(
        base_url=settings.base_url.rstrip("/"),
        headers=headers,
        transport=transport,
        timeout=settings.timeout_seconds,
    )


async def klaviyo_templates(
    settings: KlaviyoSettings, transport: httpx.AsyncBaseTransport | None = None
) -> list[dict[str, Any]]:
    """Every template of the account (`data[]` resources), following `links.next`."""
    found: list[dict[str, Any]] = []
    async with _klaviyo_client(settings, transport) as client:
        url: str | None = "/api/templates"
        params: dict[str, Any] = {"page[size]": 10}
        while url:
            body = await _get(client, url, **params)
            found += body.get("data") or []
            url = (body.get("links") or {}).get("next")
            params = {}  # the next link carries the cursor and size
    return found


def _mailchimp_client(
    settings: MailchimpSettings, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value()
        dc = settings.dc or (key.rsplit("-", 1)[-1] if "-" in key else None)
        headers = {"Authorization": "Basic " + _basic("espbridge", key)}
    elif settings.oauth_token is not None:
        dc = settings.dc
        headers = {"Authorization": f"Bearer {settings.oauth_token.get_secret_value()}"}
    else:
        raise ValueError("needs api_key or oauth_token to read templates")
    if settings.base_url is None and dc is None:
        raise ValueError("needs dc (or an api_key ending in -<dc>) to find the API")
    base = settings.base_url or f"https://{dc}.api.mailchimp.com/3.0"
    return httpx.AsyncClient(
        base_url=base.rstrip("/"), headers=headers, transport=transport, timeout=30.0
    )


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def mailchimp_content(
    settings: MailchimpSettings,
    ident: str,
    kind: str = "template",
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """All text of a Mailchimp template (its default content) or campaign (html + text)."""
    async with _mailchimp_client(settings, transport) as client:
        if kind == "campaign":
            body = await _get(client, f"/campaigns/{ident}/content")
            parts = [body.get("html"), body.get("plain_text")]
            parts += [v.get("html") for v in body.get("variate_contents") or []]
            return "\n".join(p for p in parts if isinstance(p, str))
        body = await _get(client, f"/templates/{ident}/default-content")
        return "\n".join(_strings(body.get("sections") or {}))


def _klaviyo_match(templates: Sequence[Mapping[str, Any]], wanted: str) -> TemplateText | None:
    for item in templates:
        attrs = item.get("attributes") or {}
        if wanted in (item.get("id"), attrs.get("name")):
            text = "\n".join(str(attrs.get(k) or "") for k in ("html", "text", "amp"))
            return TemplateText("klaviyo", f"klaviyo:{attrs.get('name')} ({item.get('id')})", text)
    return None


async def _check_one(
    check: TemplateCheck,
    destination: DestinationSettings | None,
    klaviyo_cache: dict[str, list[dict[str, Any]]],
    transport: httpx.AsyncBaseTransport | None,
) -> list[Problem]:
    ref = f"{check.destination}:{check.template}"
    try:
        if destination is None:
            raise ValueError(f"no destination named {check.destination!r}")
        if isinstance(destination, KlaviyoSettings):
            if check.destination not in klaviyo_cache:
                klaviyo_cache[check.destination] = await klaviyo_templates(destination, transport)
            found = _klaviyo_match(klaviyo_cache[check.destination], check.template)
            if found is None:
                raise ValueError("no Klaviyo template with this id or name")
        else:
            text = await mailchimp_content(destination, check.template, check.kind, transport)
            found = TemplateText("mailchimp", f"mailchimp:{check.kind} {check.template}", text)
    except (RejectedPayload, ValueError) as exc:  # no such template, or no way to ask for it
        return [Problem(ref, "", "error", f"cannot read the template: {exc}")]
    except (ESPError, httpx.HTTPError) as exc:  # network, 5xx/429 retried, 401/403, 3xx
        return [Unreachable(ref, "", "error", f"cannot read the template: {exc}")]
    return check_template(found.ref, found.text, found.dialect, check.fields)


async def preflight_templates(
    checks: Sequence[TemplateCheck],
    destinations: Mapping[str, DestinationSettings],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Problem]:
    """Fetch each named template and report variables the mapping leaves uncovered.

    Args:
        checks: The config's `[[templates]]` entries.
        destinations: The config's destinations by name (credentials and base URLs).
        transport: httpx transport (MockTransport in tests); None for the network.

    Returns:
        Problems in config order; a template that cannot be read is an `error` too.
    """
    cache: dict[str, list[dict[str, Any]]] = {}
    problems: list[Problem] = []
    for check in checks:
        problems += await _check_one(check, destinations.get(check.destination), cache, transport)
    return problems


def run_preflight(
    checks: Sequence[TemplateCheck],
    destinations: Mapping[str, DestinationSettings],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Problem]:
    """`preflight_templates` for synchronous callers (the CLI)."""
    return asyncio.run(preflight_templates(checks, destinations, transport=transport))
