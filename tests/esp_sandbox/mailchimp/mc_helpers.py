"""Shared constants and helpers for the Mailchimp sandbox tests."""

from __future__ import annotations

import hashlib

import httpx

from esp_sandbox.mailchimp import SEED_LIST_ID

API_KEY = "0123456789abcdef0123456789abcdef-us1"
LIST_ID = SEED_LIST_ID
PROBLEM = "application/problem+json; charset=utf-8"


def member_hash(email: str) -> str:
    """md5 of the lower-cased address."""
    return hashlib.md5(email.lower().encode()).hexdigest()


def member_path(email: str, suffix: str = "", list_id: str = LIST_ID) -> str:
    """`/lists/{id}/members/{hash}{suffix}` for an address."""
    return f"/lists/{list_id}/members/{member_hash(email)}{suffix}"


def put_member(
    client: httpx.Client, email: str, status_if_new: str = "subscribed", **body: object
) -> httpx.Response:
    """PUT (upsert) a member with `status_if_new` and extra body fields."""
    payload = {"email_address": email, "status_if_new": status_if_new, **body}
    return client.put(member_path(email), json=payload)
