"""Rendering of run reports, run records and rejects for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from sync.report import RunReport


def report_table(reports: Iterable[RunReport]) -> Table:
    """One row per sync: read, valid, sent, already sent, rejected, duration.

    For dry runs the title says nothing was sent and the sent column reads "would send".
    """
    reports = list(reports)
    # A dry run sends nothing: what a run would have had acknowledged must not read as sent.
    dry = any(report.dry_run for report in reports)
    title = "espbridge run (dry run: nothing sent)" if dry else "espbridge run"
    table = Table(title=title, show_lines=False)
    for column in (
        "sync",
        "status",
        "read",
        "valid",
        "bad input",
        "destination",
        "would send" if dry else "acknowledged",
        "already sent",
        "rejected",
        "suppressed",
        "seconds",
    ):
        table.add_column(
            column, justify="right" if column not in ("sync", "status", "destination") else "left"
        )
    for report in reports:
        c = report.counts
        dests = sorted(k.removesuffix(".records") for k in c if k.endswith(".records"))
        first = True
        for dest in dests or ["-"]:
            table.add_row(
                report.sync if first else "",
                report.status if first else "",
                str(c.get("read", 0)) if first else "",
                str(c.get("messages", 0)) if first else "",
                str(c.get("rejected.source", 0)) if first else "",
                dest,
                str(c.get(f"{dest}.acknowledged", 0)),
                str(c.get(f"{dest}.already_sent", 0)),
                str(c.get(f"{dest}.rejected", 0) + c.get(f"{dest}.rejected.mapping", 0)),
                str(c.get(f"{dest}.suppressed", 0)),
                f"{report.duration_s:.1f}" if first else "",
            )
            first = False
    return table


def print_report_details(console: Console, report: RunReport) -> None:
    """API calls by endpoint, fallbacks and trigger decisions of one run."""
    if report.dry_run:
        console.print(
            f"[yellow]dry run[/]: {report.dry_run_requests} requests written, nothing sent"
        )
    if report.api_calls:
        console.print(
            "API calls: " + ", ".join(f"{k}: {v}" for k, v in sorted(report.api_calls.items()))
        )
    if report.fallbacks:
        console.print(
            "fallbacks used: " + ", ".join(f"{k}: {v}" for k, v in sorted(report.fallbacks.items()))
        )
    if report.triggers:
        console.print(
            "triggers: " + ", ".join(f"{k}: {v}" for k, v in sorted(report.triggers.items()))
        )
    pruned = sorted((k, v) for k, v in report.counts.items() if k.startswith("pruned."))
    if pruned:  # `[state]` retention, applied after the run
        listed = ", ".join(f"{k.removeprefix('pruned.')}: {v}" for k, v in pruned)
        console.print(f"pruned from the state store: {listed}")
    for error in report.errors:
        console.print(f"[red]error[/]: {error}")


def rows_table(title: str, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Table:
    """A plain table of state-store rows."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(column)) for column in columns])
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
