"""The `espbridge` command line.

Exit codes: 0 completed (rejects are data, reported), 1 unexpected error, 2 config error,
3 fatal connectivity or auth error, 4 rejects above the sync's `reject_threshold`,
5 the sync is already running elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from sync.config import Config, ConfigError, load_config, secret_values
from sync.engine import FatalRunError, SyncBusy, SyncEngine
from sync.redact import display_url
from sync.report import RunReport, StoppedRun
from sync.runtime import exit_on_second_signal, tune_gc
from sync.store.state import StateStore
from sync.views import print_report_details, report_table, rows_table

EXIT_CONFIG, EXIT_FATAL, EXIT_REJECTS, EXIT_BUSY = 2, 3, 4, 5

app = typer.Typer(
    name="espbridge",
    help="Move Segment and warehouse events into Klaviyo and Mailchimp, exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
# Off a terminal (CI logs, pipes) tables get room instead of 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="ESPBRIDGE_CONFIG", help="The TOML config file."),
]
OUTPUTS = ("text", "json")


def _output_format(value: str) -> str:
    # A typo such as `-o jsno` must not silently print tables to a script expecting JSON.
    if value not in OUTPUTS:
        raise typer.BadParameter(f"expected one of {', '.join(OUTPUTS)}, got {value!r}")
    return value


OutputOption = Annotated[
    str, typer.Option("--output", "-o", help="text or json", callback=_output_format)
]


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        console.print(f"[red]config error[/]: {escape(str(exc))}")
        raise typer.Exit(EXIT_CONFIG) from None


def _store(config: Config, *, json_failure: bool = False) -> StateStore:
    try:
        return StateStore.open(config.state.url)
    except Exception as exc:  # the state store is unreachable: fatal
        where = display_url(config.state.url)
        console.print(f"[red]state store unreachable[/] ({escape(where)}): " + escape(str(exc)))
        if json_failure:
            reason = f"state store unreachable ({where}): {exc}"
            _emit_json([StoppedRun(None, "failed", EXIT_FATAL, _public(reason, config)).as_dict()])
        raise typer.Exit(EXIT_FATAL) from None


class _Stopped(Exception):
    """A sync's run ended the command (busy or fatal); the reason is already on stderr."""

    def __init__(self, stopped: StoppedRun) -> None:
        super().__init__(stopped.error)
        self.stopped = stopped


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# As for config errors: shorter values are not masked, replacing "1" would garble text.
_MIN_MASKED = 6


def _public(message: str, config: Config) -> str:
    """An error fit for stdout: no configured secret, URLs without user:password@.

    Errors come from ESPs, drivers and sources, which may echo a key or a URL they were given.
    """
    for secret in sorted(secret_values(config), key=len, reverse=True):
        if len(secret) >= _MIN_MASKED:
            message = message.replace(secret, "[secure]")
    return _URL.sub(lambda match: display_url(match.group(0)), message)


def _emit_json(data: Any) -> None:
    sys.stdout.write(
        orjson.dumps(
            data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
        ).decode()
        + "\n"
    )


@app.command()
def run(
    config: ConfigOption = Path("espbridge.toml"),
    sync: Annotated[
        list[str] | None, typer.Option("--sync", "-s", help="Sync(s) to run; default all.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the requests, send nothing.")
    ] = False,
    dry_run_file: Annotated[
        Path | None, typer.Option(help="Where --dry-run writes requests (default stdout).")
    ] = None,
    output: OutputOption = "text",
) -> None:
    """Run syncs once, to the end of their sources."""
    if dry_run and output == "json" and dry_run_file is None:
        # Both would go to stdout, and the report would no longer parse as one JSON document.
        console.print(
            "[red]usage error[/]: --dry-run with --output json needs --dry-run-file "
            "(the requests and the report cannot share stdout)"
        )
        raise typer.Exit(EXIT_CONFIG)
    cfg = _load(config)
    names = sync or list(cfg.syncs)
    unknown = [n for n in names if n not in cfg.syncs]
    if unknown or not names:
        console.print(
            "[red]config error[/]: no sync named "
            + (escape(", ".join(unknown)) or "(none configured)")
        )
        raise typer.Exit(EXIT_CONFIG)
    store = _store(cfg, json_failure=output == "json")
    sink = dry_run_file.open("w", encoding="utf-8") if dry_run_file else sys.stdout
    engine = SyncEngine(cfg, store, dry_run_out=sink)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reports: list[RunReport] = []
    stopped: StoppedRun | None = None
    code = 0
    try:
        for name in names:
            try:
                report = _run_one(engine, name, dry_run, stop, show_progress=output == "text")
            except _Stopped as exc:
                stopped = exc.stopped
                break
            reports.append(report)
            threshold = cfg.syncs[name].reject_threshold
            read = max(report.counts.get("read", 0), 1)
            if threshold < 1.0 and report.rejected / read > threshold:
                console.print(
                    f"[red]{escape(name)}[/]: rejects {report.rejected}/{read} "
                    f"above the threshold {threshold}"
                )
                code = EXIT_REJECTS
    finally:
        if dry_run_file:
            sink.close()
        store.close()
    if output == "json":
        # Stopped or not, stdout holds one document: a caller parsing it gets the reason.
        entries = [r.as_dict() for r in reports]
        if stopped:
            entries.append(replace(stopped, error=_public(stopped.error, cfg)).as_dict())
        _emit_json(entries)
    elif stopped:
        raise typer.Exit(stopped.exit_code)
    else:
        out.print(report_table(reports))
        for report in reports:
            print_report_details(console, report)
    raise typer.Exit(stopped.exit_code if stopped else code)


def _run_one(
    engine: SyncEngine, name: str, dry_run: bool, stop: threading.Event, *, show_progress: bool
) -> RunReport:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=not show_progress or not console.is_terminal,
        ) as progress:
            task = progress.add_task(f"{name}: starting", total=None)

            def on_batch(report: RunReport) -> None:
                c = report.counts
                progress.update(
                    task,
                    description=f"{name}: read {c.get('read', 0):,}, rejected {report.rejected:,}",
                )

            return asyncio.run(engine.run_sync(name, dry_run=dry_run, stop=stop, on_batch=on_batch))
    except SyncBusy as exc:
        console.print(f"[yellow]busy[/]: {escape(str(exc))}")
        raise _Stopped(StoppedRun(name, "busy", EXIT_BUSY, str(exc))) from None
    except FatalRunError as exc:
        console.print(f"[red]fatal[/]: {escape(str(exc))}")
        raise _Stopped(StoppedRun(name, "failed", EXIT_FATAL, str(exc))) from None
    except ConfigError as exc:
        console.print(f"[red]config error[/]: {escape(str(exc))}")
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def check(
    config: ConfigOption = Path("espbridge.toml"),
    templates: Annotated[
        bool, typer.Option("--templates", help="Also check ESP templates' variables.")
    ] = False,
) -> None:
    """Validate the config and reach every source and destination it names."""
    from sync.checks import run_checks

    cfg = _load(config)
    results = asyncio.run(run_checks(cfg, templates=templates))
    failed = False
    for item, ok, detail in results:
        failed |= not ok
        mark = "[green]ok[/]" if ok else "[red]FAIL[/]"
        out.print(f"{mark}  {escape(item)}: {escape(detail)}")
    raise typer.Exit(EXIT_FATAL if failed else 0)


@app.command()
def runs(
    config: ConfigOption = Path("espbridge.toml"),
    sync: Annotated[str | None, typer.Option("--sync", "-s")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    output: OutputOption = "text",
) -> None:
    """List the latest run records."""
    store = _store(_load(config))
    rows = store.runs(sync=sync, limit=limit)
    if output == "json":
        _emit_json(rows)
        return
    out.print(
        rows_table(
            "runs", rows, ["id", "sync", "status", "started_at", "ended_at", "dry_run", "counts"]
        )
    )


@app.command()
def rejects(
    config: ConfigOption = Path("espbridge.toml"),
    sync: Annotated[str | None, typer.Option("--sync", "-s")] = None,
    run_id: Annotated[int | None, typer.Option("--run")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    output: OutputOption = "text",
) -> None:
    """List rejected rows with the record, field and reason."""
    store = _store(_load(config))
    rows = store.rejects(sync=sync, run_id=run_id, limit=limit)
    if output == "json":
        _emit_json(rows)
        return
    out.print(
        rows_table(
            "rejected rows",
            rows,
            ["id", "run_id", "stage", "destination", "source_ref", "field", "reason"],
        )
    )


@app.command()
def retry(
    config: ConfigOption = Path("espbridge.toml"),
    sync: Annotated[
        str, typer.Option("--sync", "-s", help="The sync whose rejects to send again.")
    ] = "",
    run_id: Annotated[int | None, typer.Option("--run")] = None,
    output: OutputOption = "text",
) -> None:
    """Send again the destination rejects of a sync (after fixing config or data)."""
    cfg = _load(config)
    if sync not in cfg.syncs:
        console.print(
            f"[red]config error[/]: --sync must name a configured sync, got {escape(repr(sync))}"
        )
        raise typer.Exit(EXIT_CONFIG)
    store = _store(cfg)
    rows = [
        r for r in store.rejects(sync=sync, run_id=run_id, limit=None) if r["stage"] != "source"
    ]
    try:
        report = asyncio.run(SyncEngine(cfg, store).retry(sync, rows))
    except (SyncBusy, FatalRunError) as exc:
        busy = isinstance(exc, SyncBusy)
        if busy:
            console.print(f"[yellow]busy[/]: {escape(str(exc))}; retry once that run has finished")
        else:
            console.print(f"[red]fatal[/]: {escape(str(exc))}")
        code = EXIT_BUSY if busy else EXIT_FATAL
        if output == "json":  # stdout stays one document, as for `run`
            stopped = StoppedRun(sync, "busy" if busy else "failed", code, str(exc))
            _emit_json(replace(stopped, error=_public(stopped.error, cfg)).as_dict())
        raise typer.Exit(code) from None
    if output == "json":
        _emit_json(report.as_dict())
    else:
        kept = report.counts.get("retry.not_resendable", 0)
        out.print(f"retried {len(rows) - kept} rejected rows")
        for line in report.errors:
            out.print(f"  {escape(line)}")
        out.print(report_table([report]))


@app.command()
def schedule(config: ConfigOption = Path("espbridge.toml")) -> None:
    """Run each sync on its cron schedule until SIGTERM (the current batch finishes).

    A second SIGTERM or SIGINT exits at once, abandoning the run in progress.
    """
    from sync.scheduler import run_schedule, validate_schedules

    cfg = _load(config)
    problems = validate_schedules(cfg)
    if not any(s.schedule for s in cfg.syncs.values()):
        # Exiting 0 at once would make a service manager restart it in a loop.
        problems.append("no sync has a `schedule`: nothing to run (use `espbridge run`)")
    if problems:
        console.print("[red]config error[/]: " + escape("; ".join(problems)))
        raise typer.Exit(EXIT_CONFIG)
    store = _store(cfg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    exit_on_second_signal()
    console.print(f"scheduling {', '.join(n for n, s in cfg.syncs.items() if s.schedule)}")
    asyncio.run(
        run_schedule(SyncEngine(cfg, store), stop, on_report=lambda r: out.print(report_table([r])))
    )
    store.close()


@app.command()
def sample(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the dataset.")] = Path(
        ".espbridge/sample"
    ),
    events: Annotated[int, typer.Option(help="How many events (1k to 10M).")] = 5000,
    seed: int = 42,
    warehouse: Annotated[
        str | None, typer.Option(help="Also load a DuckDB warehouse at this path.")
    ] = None,
    end_now: Annotated[
        bool,
        typer.Option(
            "--end-now",
            help="End the 45 days now (to try triggers, whose freshness is measured against "
            "the clock). Default: fixed dates, byte-identical for a seed.",
        ),
    ] = False,
) -> None:
    """Write a deterministic e-commerce dataset in Segment spec (S3 layout and DuckDB)."""
    from connectors.sample import generate

    manifest = generate(
        out_dir,
        events=events,
        seed=seed,
        warehouse_url=f"duckdb:///{warehouse}" if warehouse else None,
        end=datetime.now(UTC) if end_now else None,
    )
    where = f"{out_dir / manifest['source_path']}" + (f" and {warehouse}" if warehouse else "")
    out.print(
        f"wrote {manifest['lines']:,} lines ({manifest['start']} to {manifest['end']}) to {where}"
    )
    out.print("planted: " + ", ".join(f"{k} {v}" for k, v in sorted(manifest["counts"].items())))


@app.command()
def sandbox(
    port: int = 8787,
    faults: Annotated[
        str | None, typer.Option(help="Fault spec, e.g. 429=0.05,reset_after=0.02")
    ] = None,
    time_scale: Annotated[float, typer.Option(help="Multiply every rate limit.")] = 1.0,
    seed: int = 0,
) -> None:
    """Run the local ESP sandbox (Klaviyo at /api, Mailchimp at /3.0) on 127.0.0.1."""
    # The sandbox is an independent implementation: run it as its own program.
    args = [
        sys.executable,
        "-m",
        "esp_sandbox",
        "--port",
        str(port),
        "--time-scale",
        str(time_scale),
        "--seed",
        str(seed),
    ]
    if faults:
        args += ["--faults", faults]
    raise typer.Exit(subprocess.call(args, env=os.environ.copy()))


@app.command()
def serve(
    config: ConfigOption = Path("espbridge.toml"),
    host: Annotated[str | None, typer.Option(help="Default: [ingest] host.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: [ingest] port.")] = None,
) -> None:
    """Accept Segment's HTTP API and webhooks, and send in real time.

    SIGTERM or Ctrl-C drains requests and the worker's batch; a second one exits at once.
    """
    from sync.ingest.serve import serve as serve_ingest

    cfg = _load(config)
    exit_on_second_signal()  # the first is uvicorn's: it drains requests, then the worker
    serve_ingest(cfg, host=host, port=port)


def _mount_triggers() -> None:
    try:
        from sync.triggers.cli import app as triggers_app
    except ImportError:
        return
    app.add_typer(triggers_app, name="triggers", help="List and explain trigger decisions.")


_mount_triggers()


def main() -> None:
    """The `espbridge` program: process settings for streaming work, then the CLI."""
    tune_gc()
    app()


if __name__ == "__main__":
    main()
