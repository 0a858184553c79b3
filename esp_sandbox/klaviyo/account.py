"""`GET /api/accounts`, `GET /api/templates`, and the test hook to add templates."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from esp_sandbox.klaviyo.common import Deps, base_url, jsonapi

ACCOUNT_ID = "SBXACC"
PUBLIC_API_KEY = "SbxPub"
SEED_TEMPLATES: tuple[dict[str, str], ...] = (
    {
        "id": "TplOrd",
        "name": "Order confirmation",
        "html": (
            "<p>Hi {{ person.first_name|default:'there' }},</p>"
            "<p>Thanks for order {{ event.OrderId }} of {{ event.value }}.</p>"
        ),
    },
    {
        "id": "TplCart",
        "name": "Abandoned cart",
        "html": "<p>{{ person.email }}, you left {{ event.ProductName }} in your cart.</p>",
    },
)


def router(deps: Deps) -> APIRouter:
    """Routes for the account and its templates."""
    api = APIRouter()

    @api.get("/api/accounts")
    async def get_accounts(request: Request) -> Response:
        base = base_url(request)
        account = {
            "type": "account",
            "id": ACCOUNT_ID,
            "attributes": {
                "test_account": True,
                "contact_information": {
                    "default_sender_name": "espbridge sandbox",
                    "default_sender_email": "sandbox@example.com",
                    "website_url": "https://example.com",
                    "organization_name": "espbridge sandbox",
                    "street_address": {
                        "address1": "1 Sandbox Way",
                        "address2": None,
                        "city": "Boston",
                        "region": "MA",
                        "country": "US",
                        "zip": "02110",
                    },
                },
                "industry": None,
                "timezone": "UTC",
                "preferred_currency": "USD",
                "public_api_key": PUBLIC_API_KEY,
                "locale": "en-US",
            },
            "links": {"self": f"{base}/api/accounts/{ACCOUNT_ID}/"},
        }
        return jsonapi({"data": [account], "links": {"self": str(request.url)}})

    @api.get("/api/templates")
    async def get_templates(request: Request) -> Response:
        base = base_url(request)
        with deps.store.lock:
            templates = [_template_resource(t, base) for t in deps.store.templates.values()]
        return jsonapi({"data": templates, "links": {"self": str(request.url)}})

    return api


def introspection_router(deps: Deps) -> APIRouter:
    """`POST /_sandbox/klaviyo/templates`: add a template `{id?, name, html, text?}`."""
    api = APIRouter()

    @api.post("/templates", status_code=201)
    async def add_template(request: Request) -> dict[str, Any]:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, f"body must be JSON: {exc}") from exc
        if not isinstance(payload, dict) or not payload.get("name") or not payload.get("html"):
            raise HTTPException(400, "template needs 'name' and 'html'")
        with deps.store.lock:
            template = add(deps, payload)
        return template

    return api


def seed(deps: Deps) -> None:
    """Put the seeded templates in a fresh store."""
    for template in SEED_TEMPLATES:
        add(deps, dict(template))


def add(deps: Deps, payload: dict[str, Any]) -> dict[str, Any]:
    """Store a template (id generated when absent)."""
    now = deps.ctx.clock.now().isoformat()
    template_id = str(payload.get("id") or deps.ctx.new_id(6))
    template: dict[str, Any] = {
        "id": template_id,
        "name": str(payload["name"]),
        "html": str(payload["html"]),
        "text": payload.get("text"),
        "editor_type": str(payload.get("editor_type") or "CODE"),
        "created": now,
        "updated": now,
    }
    deps.store.templates[template_id] = template
    return template


def _template_resource(template: dict[str, Any], base: str) -> dict[str, Any]:
    attrs = {k: template[k] for k in ("name", "editor_type", "html", "text", "created", "updated")}
    attrs["amp"] = None
    return {
        "type": "template",
        "id": template["id"],
        "attributes": attrs,
        "links": {"self": f"{base}/api/templates/{template['id']}/"},
    }
