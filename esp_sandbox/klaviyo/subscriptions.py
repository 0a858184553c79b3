"""Bulk subscribe / unsubscribe jobs (consent per channel)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from esp_sandbox.klaviyo.common import Deps, accepted, implied_unsubscribe, read_body
from esp_sandbox.klaviyo.errors import KlaviyoError
from esp_sandbox.klaviyo.identity import write_profile
from esp_sandbox.klaviyo.spec import BodyIssue
from esp_sandbox.klaviyo.store import KList
from esp_sandbox.klaviyo.validate import identifier_issues, parse_time, raise_issues

SUBSCRIBE = "/api/profile-subscription-bulk-create-jobs"
UNSUBSCRIBE = "/api/profile-subscription-bulk-delete-jobs"
MAX_SUBSCRIBE = 1000
MAX_UNSUBSCRIBE = 100


def router(deps: Deps) -> APIRouter:
    """Routes for consent changes."""
    api = APIRouter()

    @api.post(SUBSCRIBE)
    async def bulk_subscribe_profiles(request: Request) -> Response:
        data = (await read_body(deps, request, SUBSCRIBE))["data"]
        attrs = data["attributes"]
        profiles = attrs["profiles"]["data"]
        _check_count(profiles, MAX_SUBSCRIBE)
        historical = bool(attrs.get("historical_import"))
        raise_issues(_subscribe_issues(deps, profiles, historical))
        with deps.store.lock:
            klist = _list_of(deps, data)
            _apply(deps, profiles, klist, subscribe=True, historical=historical)
            deps.store.subscription_jobs.append(
                _job_log("subscribe", klist, profiles, attrs.get("custom_source"), historical)
            )
        return accepted()

    @api.post(UNSUBSCRIBE)
    async def bulk_unsubscribe_profiles(request: Request) -> Response:
        data = (await read_body(deps, request, UNSUBSCRIBE))["data"]
        profiles = data["attributes"]["profiles"]["data"]
        _check_count(profiles, MAX_UNSUBSCRIBE)
        issues: list[BodyIssue] = []
        for index, profile in enumerate(profiles):
            pointer = f"/data/attributes/profiles/data/{index}/attributes"
            issues += identifier_issues(profile.get("attributes") or {}, pointer)
        raise_issues(issues)
        with deps.store.lock:
            klist = _list_of(deps, data)
            _apply(deps, profiles, klist, subscribe=False, historical=False)
            deps.store.subscription_jobs.append(
                _job_log("unsubscribe", klist, profiles, None, False)
            )
        return accepted()

    return api


def _check_count(profiles: list[Any], limit: int) -> None:
    if len(profiles) > limit:
        raise KlaviyoError(
            400,
            "invalid",
            f"At most {limit} profiles may be submitted per call; got {len(profiles)}.",
            pointer="/data/attributes/profiles/data",
        )


def _subscribe_issues(deps: Deps, profiles: list[Any], historical: bool) -> list[BodyIssue]:
    """Identifier format; under historical_import, a past consented_at per channel."""
    now = deps.ctx.clock.now()
    issues: list[BodyIssue] = []
    for index, profile in enumerate(profiles):
        pointer = f"/data/attributes/profiles/data/{index}/attributes"
        attrs = profile.get("attributes") or {}
        issues += identifier_issues(attrs, pointer)
        for channel, kinds in (attrs.get("subscriptions") or {}).items():
            for kind, consent in (kinds or {}).items():
                if not isinstance(consent, dict) or "consent" not in consent:
                    continue
                where = f"{pointer}/subscriptions/{channel}/{kind}"
                if consent.get("consent") != "SUBSCRIBED":
                    issues.append(BodyIssue(f"{where}/consent", "consent must be 'SUBSCRIBED'."))
                raw = consent.get("consented_at")
                if historical and not raw:
                    issues.append(
                        BodyIssue(
                            f"{where}/consented_at",
                            "consented_at is required when historical_import is true.",
                        )
                    )
                if raw and not historical:
                    # Spec, SubscriptionParameters.consented_at: "if the historical_import
                    # flag is not included, providing any value for this field will raise
                    # an error."
                    issues.append(
                        BodyIssue(
                            f"{where}/consented_at",
                            "consented_at may only be given when historical_import is true.",
                        )
                    )
                    continue
                parsed = parse_time(raw) if isinstance(raw, str) else None
                if raw and (parsed is None or parsed > now):
                    issues.append(
                        BodyIssue(f"{where}/consented_at", "consented_at must be in the past.")
                    )
    return issues


def _list_of(deps: Deps, data: dict[str, Any]) -> KList | None:
    ref = ((data.get("relationships") or {}).get("list") or {}).get("data")
    if not ref:
        return None
    klist = deps.store.lists.get(ref.get("id", ""))
    if klist is None:
        raise KlaviyoError(
            404,
            "not_found",
            f"List '{ref.get('id')}' does not exist.",
            pointer="/data/relationships/list/data/id",
        )
    return klist


def _apply(
    deps: Deps, profiles: list[Any], klist: KList | None, *, subscribe: bool, historical: bool
) -> None:
    now = deps.ctx.clock.now().isoformat()
    for profile in profiles:
        attrs = profile.get("attributes") or {}
        idents = {k: attrs[k] for k in ("email", "phone_number") if attrs.get(k)}
        target, _ = write_profile(deps.store, deps.ctx, profile.get("id"), idents, None, "event")
        subs = attrs.get("subscriptions") or (implied_unsubscribe(attrs) if not subscribe else {})
        pending = bool(subscribe and klist and klist.opt_in_process == "double_opt_in")
        for channel, kinds in subs.items():
            for kind, consent in (kinds or {}).items():
                if not isinstance(consent, dict) or "consent" not in consent:
                    continue
                state = "PENDING" if pending and not historical else consent["consent"]
                target.subscriptions.setdefault(channel, {})[kind] = {
                    "consent": state,
                    "consented_at": consent.get("consented_at") or now,
                    "list_id": klist.id if klist else None,
                }
        if klist is None:
            continue
        if subscribe and not (pending and not historical):
            if target.id not in klist.members:
                klist.members.append(target.id)
        elif not subscribe and target.id in klist.members:
            klist.members.remove(target.id)


def _job_log(
    kind: str, klist: KList | None, profiles: list[Any], source: Any, historical: bool
) -> dict[str, Any]:
    return {
        "kind": kind,
        "list_id": klist.id if klist else None,
        "profiles": len(profiles),
        "custom_source": source,
        "historical_import": historical,
    }
