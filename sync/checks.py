"""`espbridge check`: reach every source and destination a config names."""

from __future__ import annotations

import asyncio
from typing import Any

from sync.config import Config
from sync.registry import build_destination, build_source

CheckResult = tuple[str, bool, str]
"""(item, ok, detail): detail is a description when ok, else the exact reason."""


async def run_checks(config: Config, *, templates: bool = False) -> list[CheckResult]:
    """Check the state store, each source and each destination; never raises."""
    results: list[CheckResult] = [_check_state(config)]
    for name, source in config.sources.items():
        results.append(await asyncio.to_thread(_check_source, name, source, config))
    for name, destination in config.destinations.items():
        results.extend(await _check_destination(name, destination, config, templates))
    for problem in _schedule_problems(config):
        results.append(("schedule", False, problem))
    return results


def _check_state(config: Config) -> CheckResult:
    from sync.store.state import StateStore

    url = config.state.url
    shown = url.split("@")[-1]
    try:
        store = StateStore.open(url)
        store.close()
    except Exception as exc:
        return (f"state {shown}", False, f"{type(exc).__name__}: {exc}")
    return (f"state {shown}", True, "reachable, schema up to date")


def _check_source(name: str, settings: Any, config: Config) -> CheckResult:
    try:
        return (f"source {name}", True, build_source(name, settings).check())
    except Exception as exc:
        return (f"source {name}", False, f"{type(exc).__name__}: {exc}")


async def _check_destination(
    name: str, settings: Any, config: Config, templates: bool
) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        destination = build_destination(name, settings)
    except Exception as exc:
        return [(f"destination {name}", False, f"{type(exc).__name__}: {exc}")]
    try:
        results.append((f"destination {name}", True, await destination.check()))
        preflight = getattr(destination, "preflight", None)
        if preflight is not None:
            problems = await preflight()
            detail = "; ".join(str(p) for p in problems) or "mapping matches the audience"
            results.append((f"preflight {name}", not problems, detail))
        if templates:
            results.extend(await _check_templates(name, destination, config))
    except Exception as exc:
        results.append((f"destination {name}", False, f"{type(exc).__name__}: {exc}"))
    finally:
        await destination.aclose()
    return results


async def _check_templates(name: str, destination: Any, config: Config) -> list[CheckResult]:
    check = getattr(destination, "check_templates", None)
    if check is None:
        return [(f"templates {name}", True, "no templates to check for this destination")]
    problems = await check()
    detail = "; ".join(str(p) for p in problems) or "every template variable is filled"
    return [(f"templates {name}", not problems, detail)]


def _schedule_problems(config: Config) -> list[str]:
    from sync.scheduler import validate_schedules

    return validate_schedules(config)
