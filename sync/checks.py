"""`espbridge check`: reach every source and destination a config names."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from connectors.errors import RejectedPayload
from sync.config import Config, config_secrets
from sync.redact import display_url, redact_text
from sync.registry import build_destination, build_source
from sync.report import EXIT_CONFIG, EXIT_FATAL, EXIT_OK
from sync.store.state import StateStore


class CheckResult(NamedTuple):
    """One line of `espbridge check`: `detail` describes `item` when ok, else says why not.

    `config` marks a failure the user fixes in the config or in the ESP account's setup
    (a cron expression, a merge field the audience lacks, a template variable the mapping
    leaves empty, an id the ESP does not know): exit 2. Other failures are something that
    could not be reached or checked (network, 5xx, credentials refused): exit 3.
    """

    item: str
    ok: bool
    detail: str
    config: bool = False


def exit_code(results: list[CheckResult]) -> int:
    """2 if the config or the ESP account's setup must change, else 3 if anything failed.

    A config problem wins over a connectivity failure: nothing can work until it is fixed
    (and `schedule` refuses the same config with 2). 0 when everything is ok.
    """
    failed = [result for result in results if not result.ok]
    if any(result.config for result in failed):
        return EXIT_CONFIG
    return EXIT_FATAL if failed else EXIT_OK


def _refused(exc: Exception) -> bool:
    """The ESP answered and refused what the config names (a 4xx other than 401/403/429).

    An audience or template id it does not have: waiting does not help, the config must
    change. Refused credentials stay 3, as for `run` (README, exit codes).
    """
    return isinstance(exc, RejectedPayload)


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
        results.append(CheckResult("schedule", False, problem, config=True))
    secrets = config_secrets(config)
    return [
        result._replace(
            item=redact_text(result.item, secrets), detail=redact_text(result.detail, secrets)
        )
        for result in results
    ]


def _check_state(config: Config) -> tuple[CheckResult, StateStore | None]:
    url = config.state.url
    shown = display_url(url)
    try:
        store = StateStore.open(url)
    except Exception as exc:
        return CheckResult(f"state {shown}", False, f"{type(exc).__name__}: {exc}"), None
    return CheckResult(f"state {shown}", True, "reachable, schema up to date"), store


def _check_source(name: str, settings: Any, store: StateStore | None) -> CheckResult:
    try:
        # The inbox source reads the state store; the others ignore it.
        return CheckResult(f"source {name}", True, build_source(name, settings, store).check())
    except Exception as exc:
        return CheckResult(f"source {name}", False, f"{type(exc).__name__}: {exc}")


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
        return [CheckResult(f"destination {name}", False, f"{type(exc).__name__}: {exc}")]
    try:
        results.append(CheckResult(f"destination {name}", True, await destination.check()))
        if settings.type == "mailchimp":
            results.extend(await _mailchimp_preflight(name, settings))
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(f"destination {name}", False, reason, _refused(exc)))
    finally:
        await destination.aclose()
    return results


async def _mailchimp_preflight(name: str, settings: Any) -> list[CheckResult]:
    from connectors.mailchimp.preflight import preflight

    problems = await preflight(settings)
    errors = [p for p in problems if p.severity == "error"]
    # Each is a mismatch between the config and the audience: fixed in one or the other.
    results = [
        CheckResult(f"preflight {name}", False, f"{p.field}: {p.message}", config=True)
        for p in errors
    ]
    results += [
        CheckResult(f"preflight {name}", True, f"warning: {p.field}: {p.message}")
        for p in problems
        if p not in errors
    ]
    if not problems:
        results.append(
            CheckResult(
                f"preflight {name}",
                True,
                "every mapped merge field exists and every required one is filled",
            )
        )
    return results


async def _check_templates(config: Config) -> list[CheckResult]:
    from connectors.templates import Unreachable, preflight_templates

    if not config.templates:
        return [CheckResult("templates", True, "no [[templates]] configured")]
    try:
        problems = await preflight_templates(config.templates, config.destinations)
    except Exception as exc:
        return [CheckResult("templates", False, f"{type(exc).__name__}: {exc}")]
    # A variable the mapping leaves empty, or a template the ESP does not have: the config
    # or the template must change (2). A template the ESP could not be asked for: 3.
    results = [
        CheckResult(
            f"template {p.template}",
            p.severity != "error",
            f"{p.severity}: {p.message}",
            config=not isinstance(p, Unreachable),
        )
        for p in problems
    ]
    every = "every template variable is filled or has a fallback"
    return results or [CheckResult("templates", True, every)]


def _schedule_problems(config: Config) -> list[str]:
    from sync.scheduler import validate_schedules

    return validate_schedules(config)
