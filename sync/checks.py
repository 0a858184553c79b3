"""`espbridge check`: reach every source and destination a config names."""

from __future__ import annotations

import asyncio
from typing import Any

from sync.config import Config, config_secrets
from sync.redact import display_url, redact_text
from sync.registry import build_destination, build_source
from sync.report import EXIT_CONFIG, EXIT_FATAL, EXIT_OK
from sync.store.state import StateStore

CheckResult = tuple[str, bool, str]
"""(item, ok, detail): detail is a description when ok, else the exact reason."""

CONFIG_ITEMS = frozenset({"schedule"})
"""Items whose failure is a mistake in the config itself, not something unreachable."""


def exit_code(results: list[CheckResult]) -> int:
    """2 if the config itself is wrong, else 3 if anything failed, else 0.

    A config problem wins over a connectivity failure: nothing can work until it is fixed
    (and `schedule` refuses the same config with 2).
    """
    failed = {item for item, ok, _ in results if not ok}
    if failed & CONFIG_ITEMS:
        return EXIT_CONFIG
    return EXIT_FATAL if failed else EXIT_OK


async def run_checks(config: Config, *, templates: bool = False) -> list[CheckResult]:
    """Check the state store, each source and each destination; never raises.

    Details are redacted (`redact_text`): drivers and ESPs echo URLs and keys in errors.
    """
    state, store = _check_state(config)
    results: list[CheckResult] = [state]
    try:
        for name, source in config.sources.items():
            results.append(await asyncio.to_thread(_check_source, name, source, store))
    finally:
        if store is not None:
            store.close()
    for name, destination in config.destinations.items():
        results.extend(await _check_destination(name, destination))
    if templates:
        results.extend(await _check_templates(config))
    for problem in _schedule_problems(config):
        results.append(("schedule", False, problem))
    secrets = config_secrets(config)
    return [
        (redact_text(item, secrets), ok, redact_text(detail, secrets))
        for item, ok, detail in results
    ]


def _check_state(config: Config) -> tuple[CheckResult, StateStore | None]:
    url = config.state.url
    shown = display_url(url)
    try:
        store = StateStore.open(url)
    except Exception as exc:
        return (f"state {shown}", False, f"{type(exc).__name__}: {exc}"), None
    return (f"state {shown}", True, "reachable, schema up to date"), store


def _check_source(name: str, settings: Any, store: StateStore | None) -> CheckResult:
    try:
        # The inbox source reads the state store; the others ignore it.
        return (f"source {name}", True, build_source(name, settings, store).check())
    except Exception as exc:
        return (f"source {name}", False, f"{type(exc).__name__}: {exc}")


CHECK_ATTEMPTS = 2
"""Attempts per check request: a run's backoff (six attempts, up to 30 s apart) would keep
`espbridge check` waiting most of a minute on each unreachable ESP."""


def _briefly(settings: Any) -> Any:
    """Destination settings whose retries are few and short, for a check."""
    retry = getattr(settings, "retry", None)
    if retry is None:
        return settings
    quick = retry.model_copy(
        update={
            "max_attempts": min(retry.max_attempts, CHECK_ATTEMPTS),
            "max_delay_seconds": min(retry.max_delay_seconds, 1.0),
        }
    )
    return settings.model_copy(update={"retry": quick})


async def _check_destination(name: str, settings: Any) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        destination = build_destination(name, _briefly(settings))
    except Exception as exc:
        return [(f"destination {name}", False, f"{type(exc).__name__}: {exc}")]
    try:
        results.append((f"destination {name}", True, await destination.check()))
        if settings.type == "mailchimp":
            results.extend(await _mailchimp_preflight(name, settings))
    except Exception as exc:
        results.append((f"destination {name}", False, f"{type(exc).__name__}: {exc}"))
    finally:
        await destination.aclose()
    return results


async def _mailchimp_preflight(name: str, settings: Any) -> list[CheckResult]:
    from connectors.mailchimp.preflight import preflight

    problems = await preflight(settings)
    errors = [p for p in problems if p.severity == "error"]
    results: list[CheckResult] = [
        (f"preflight {name}", False, f"{p.field}: {p.message}") for p in errors
    ]
    results += [
        (f"preflight {name}", True, f"warning: {p.field}: {p.message}")
        for p in problems
        if p not in errors
    ]
    if not problems:
        results.append(
            (
                f"preflight {name}",
                True,
                "every mapped merge field exists and every required one is filled",
            )
        )
    return results


async def _check_templates(config: Config) -> list[CheckResult]:
    from connectors.templates import preflight_templates

    if not config.templates:
        return [("templates", True, "no [[templates]] configured")]
    try:
        problems = await preflight_templates(config.templates, config.destinations)
    except Exception as exc:
        return [("templates", False, f"{type(exc).__name__}: {exc}")]
    results: list[CheckResult] = [
        (f"template {p.template}", p.severity != "error", f"{p.severity}: {p.message}")
        for p in problems
    ]
    return results or [("templates", True, "every template variable is filled or has a fallback")]


def _schedule_problems(config: Config) -> list[str]:
    from sync.scheduler import validate_schedules

    return validate_schedules(config)
