"""`espbridge triggers list|explain|counts`: what the trigger engine decided, and why."""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from mapping.message import MessageError, parse_timestamp
from sync.config import ConfigError, load_config
from sync.store.state import StateStore
from sync.triggers.explain import decision_counts, explain, list_decisions, one_line

app = typer.Typer(no_args_is_help=True, help="List and explain trigger decisions.")

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="ESPBRIDGE_CONFIG", help="The TOML config file."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _store(config: Path) -> StateStore:
    try:
        return StateStore.open(load_config(config).state.url)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value, "--since")
    except MessageError as exc:
        raise typer.BadParameter(exc.reason, param_hint="--since") from None


STATUSES = ("fired", "cancelled", "suppressed", "pending")


def _status(value: str | None) -> str | None:
    # A typo ("suppresed") would otherwise list nothing and say "no decisions match".
    if value is not None and value not in STATUSES:
        raise typer.BadParameter(
            f"{value!r}: use one of {', '.join(STATUSES)}", param_hint="--status"
        )
    return value


def _json(data: object) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


@app.command("list")
def list_command(
    config: ConfigOption = Path("espbridge.toml"),
    trigger: Annotated[str | None, typer.Option(help="Only this trigger.")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer id.")] = None,
    status: Annotated[
        str | None, typer.Option(help="fired, cancelled, suppressed or pending.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Due at or after (ISO-8601).")] = None,
    pending: Annotated[bool, typer.Option(help="Include undecided instances.")] = False,
    # min=1: a negative LIMIT lists everything on SQLite and is an SQL error on PostgreSQL.
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Decisions, latest due time first: fired, cancelled (by which event) or suppressed."""
    store = _store(config)
    try:
        found = list_decisions(
            store,
            trigger=trigger,
            customer_id=customer,
            status=_status(status),
            since=_since(since),
            include_pending=pending,
            limit=limit,
        )
    finally:
        store.close()
    if as_json:
        _json([dataclasses.asdict(d) for d in found])
        return
    for record in found:
        typer.echo(one_line(record))
    if not found:
        typer.echo("no trigger decisions match", err=True)


@app.command("explain")
def explain_command(
    target: Annotated[str, typer.Argument(help="An instance id (unique_id) or a customer id.")],
    config: ConfigOption = Path("espbridge.toml"),
    limit: Annotated[int, typer.Option(min=1, help="Instances shown for a customer.")] = 10,
) -> None:
    """Why an instance fired, was cancelled or suppressed (or every one of a customer's)."""
    store = _store(config)
    try:
        found = list_decisions(store, instance_id=target, limit=1)
        if not found:
            found = list_decisions(store, customer_id=target, include_pending=True, limit=limit)
    finally:
        store.close()
    if not found:
        typer.echo(f"no trigger instance or customer {target!r}", err=True)
        raise typer.Exit(2)  # the argument names nothing: a usage error, not a failure
    typer.echo("\n\n".join(explain(record) for record in found))


@app.command("counts")
def counts_command(
    config: ConfigOption = Path("espbridge.toml"),
    since: Annotated[str | None, typer.Option(help="Due at or after (ISO-8601).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Instances by outcome and reason (e.g. suppressed.cap)."""
    store = _store(config)
    try:
        counts = decision_counts(store, since=_since(since))
    finally:
        store.close()
    if as_json:
        _json(counts)
        return
    for name, value in sorted(counts.items()):
        typer.echo(f"{name:<28} {value}")
