"""Account root, ping, and lists (audiences)."""

from __future__ import annotations

from typing import Any

from esp_sandbox.mailchimp import errors
from esp_sandbox.mailchimp.errors import FieldError
from esp_sandbox.mailchimp.merge_fields import seed_fields
from esp_sandbox.mailchimp.routing import Call, OperationTable, Reply
from esp_sandbox.mailchimp.store import Audience, MailchimpStore

_LIST_REQUIRED = (
    "name", "contact", "permission_reminder", "campaign_defaults", "email_type_option",
)  # fmt: skip


def create_audience(
    store: MailchimpStore, name: str, list_id: str | None = None, body: dict[str, Any] | None = None
) -> Audience:
    """Create an audience with Mailchimp's default merge fields."""
    audience = Audience(
        id=list_id or store.new_hex(10),
        web_id=store.next_web_id(),
        name=name,
        date_created=store.now(),
        double_optin=bool((body or {}).get("double_optin", False)),
        body=dict(body or {}),
    )
    seed_fields(audience)
    store.lists[audience.id] = audience
    return audience


def audience_finder(store: MailchimpStore) -> Any:
    """A `Call -> Audience` lookup that answers 404 for unknown list ids."""

    def audience_of(call: Call) -> Audience:
        audience = store.audience(call.path_params["list_id"])
        if audience is None:
            raise errors.not_found()
        return audience

    return audience_of


def list_json(audience: Audience) -> dict[str, Any]:
    """A list as `GET /lists/{id}` renders it."""
    counts = {s: 0 for s in ("subscribed", "unsubscribed", "cleaned", "pending", "archived")}
    for member in audience.members.values():
        if member.status in counts:
            counts[member.status] += 1
    body = audience.body
    return {
        "id": audience.id,
        "web_id": audience.web_id,
        "name": audience.name,
        "contact": body.get("contact", {}),
        "permission_reminder": body.get("permission_reminder", ""),
        "use_archive_bar": body.get("use_archive_bar", False),
        "campaign_defaults": body.get("campaign_defaults", {}),
        "notify_on_subscribe": body.get("notify_on_subscribe", ""),
        "notify_on_unsubscribe": body.get("notify_on_unsubscribe", ""),
        "date_created": audience.date_created,
        "list_rating": 0,
        "email_type_option": bool(body.get("email_type_option", False)),
        "subscribe_url_short": "",
        "subscribe_url_long": "",
        "beamer_address": "",
        "visibility": body.get("visibility", "prv"),
        "double_optin": audience.double_optin,
        "has_welcome": False,
        "marketing_permissions": bool(body.get("marketing_permissions", False)),
        "modules": [],
        "stats": {
            "member_count": counts["subscribed"],
            "unsubscribe_count": counts["unsubscribed"],
            "cleaned_count": counts["cleaned"],
            "member_count_since_send": counts["subscribed"],
            "merge_field_count": len(audience.merge_fields),
        },
        "_links": [],
    }


def install(table: OperationTable, store: MailchimpStore) -> None:
    """Register root, ping and list operations."""
    audience_of = audience_finder(store)

    def ping(call: Call) -> Reply:
        return Reply(200, {"health_status": "Everything's Chimpy!"})

    def root(call: Call) -> Reply:
        total = sum(
            1 for a in store.lists.values() for m in a.members.values() if m.status == "subscribed"
        )
        return Reply(
            200,
            {
                "account_id": "espbridgesandbox",
                "login_id": "espbridge",
                "account_name": "espbridge sandbox",
                "email": "sandbox@example.com",
                "first_name": "Sandbox",
                "last_name": "Account",
                "username": "espbridge-sandbox",
                "avatar_url": "",
                "role": "owner",
                "member_since": "2020-01-01T00:00:00+00:00",
                "pricing_plan_type": "monthly",
                "first_payment": "2020-01-01T00:00:00+00:00",
                "account_timezone": "UTC",
                "account_industry": "Software",
                "contact": {"company": "espbridge", "country": "US"},
                "pro_enabled": False,
                "last_login": store.now(),
                "total_subscribers": total,
                "industry_stats": {"open_rate": 0, "bounce_rate": 0, "click_rate": 0},
                "_links": [],
            },
        )

    def get_lists(call: Call) -> Reply:
        lists = list(store.lists.values())
        return Reply(
            200,
            {
                "lists": [list_json(a) for a in call.page(lists)],
                "total_items": len(lists),
                "constraints": {
                    "may_create": True,
                    "max_instances": 100,
                    "current_total_instances": len(lists),
                },
                "_links": [],
            },
        )

    def post_list(call: Call) -> Reply:
        body = call.object_body()
        missing = [FieldError(k, "This value should not be blank.") for k in _LIST_REQUIRED
                   if body.get(k) in (None, "", {})]  # fmt: skip
        if missing:
            raise errors.invalid(errors.VALIDATION_DETAIL, *missing)
        if not isinstance(body["name"], str):
            raise errors.schema_mismatch("name", "string", body["name"])
        return Reply(200, list_json(create_audience(store, body["name"], body=body)))

    def get_list(call: Call) -> Reply:
        return Reply(200, list_json(audience_of(call)))

    table.add("GET", "/", root)
    table.add("GET", "/ping", ping)
    table.add("GET", "/lists", get_lists)
    table.add("POST", "/lists", post_list)
    table.add("GET", "/lists/{list_id}", get_list)
