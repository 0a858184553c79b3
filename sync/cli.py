"""The `espbridge` command line.

Exit codes: 0 completed (rejects are data, reported), 1 unexpected error, 2 config error,
3 fatal connectivity or auth error, 4 rejects above the sync's `reject_threshold`,
5 the sync is already running elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from sync.config import Config, ConfigError, config_secrets, load_config, state_only
from sync.engine import FatalRunError, SyncBusy, SyncEngine
from sync.redact import display_url, redact_text
from sync.report import (
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_FATAL,
    EXIT_REJECTS,
    RunReport,
    StoppedRun,
)
from sync.runtime import exit_on_second_signal, tune_gc
from sync.store.state import StateStore
from sync.views import print_report_details, report_table, rows_table

app = typer.Typer(
    name="espbridge",
    help="Move Segment and warehouse events into Klaviyo and Mailchimp, exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Off a terminal (CI logs, pipes) tables get room instead of 80 columns.
console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)
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


LOCAL_COMMANDS = frozenset({"runs", "rejects", "triggers"})
"""Commands that only read the state store: they load `[state]` alone (`state_only`), so
an unset `${VAR}` of a destination or a source does not stop them."""


@app.callback()
def _main(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand in LOCAL_COMMANDS:
        # Also reaches sub-apps that load the config themselves (`triggers …`).
        ctx.with_resource(state_only())


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        console.print(f"[red]config error[/]: {escape(str(exc))}")
        raise typer.Exit(EXIT_CONFIG) from None


def _store(config: Config, *, json_failure: bool = False) -> StateStore:
    try:
        return StateStore.open(config.state.url, secrets=config_secrets(config))
    except Exception as exc:  # the state store is unreachable: fatal
        detail = _public(f"({display_url(config.state.url)}): {exc}", config)
        console.print("[red]state store unreachable[/] " + escape(detail))
        reason = f"state store unreachable {detail}"
        if json_failure:
            _emit_json([StoppedRun(None, "failed", EXIT_FATAL, reason).as_dict()])
        raise typer.Exit(EXIT_FATAL) from None


class _Stopped(Exception):
    """A sync's run ended the command (busy or fatal); the reason is already on stderr."""

    def __init__(self, stopped: StoppedRun) -> None:
        super().__init__(stopped.error)
        self.stopped = stopped


def _stopped(
    sync: str, exc: SyncBusy | FatalRunError, config: Config, *, busy_hint: str = ""
) -> StoppedRun:
    """Print why a sync's run stopped the command (redacted); what `-o json` lists."""
    reason = _public(str(exc), config)
    if isinstance(exc, SyncBusy):
        console.print(f"[yellow]busy[/]: {escape(reason)}{busy_hint}")
        return StoppedRun(sync, "busy", EXIT_BUSY, reason)
    console.print(f"[red]fatal[/]: {escape(reason)}")
    return StoppedRun(sync, "failed", EXIT_FATAL, reason)


def _public(message: str, config: Config) -> str:
    """An error fit for a terminal: no configured secret, URLs without user:password@.

    Errors come from ESPs, drivers and sources, which may echo a key or a URL they were given.
    Every error the CLI prints, on stdout or stderr, goes through here (`redact_text`).
    """
    return redact_text(message, config_secrets(config))


def _public_report(report: RunReport, config: Config) -> RunReport:
    """`report` with its errors redacted, for printing."""
    return replace(report, errors=[_public(error, config) for error in report.errors])


class _RedactingHandler(logging.Handler):
    """Log records (tracebacks included) on stderr, redacted as `_public` redacts errors."""

    def __init__(self, config: Config) -> None:
        super().__init__(logging.WARNING)
        self.secrets = config_secrets(config)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(redact_text(self.format(record), self.secrets) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


@contextmanager
def _redacted_logs(config: Config) -> Iterator[None]:
    """Warnings and errors logged meanwhile reach stderr redacted (`schedule`, `serve`)."""
    handler = _RedactingHandler(config)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


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
    # Requests on stdout are JSON lines for a pipe: the report goes to stderr then.
    report_out = console if dry_run and dry_run_file is None else out
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
        entries = [_public_report(r, cfg).as_dict() for r in reports]
        if stopped:
            entries.append(stopped.as_dict())  # its error is redacted already
        _emit_json(entries)
    elif stopped:
        raise typer.Exit(stopped.exit_code)
    else:
        report_out.print(report_table(reports))
        for report in reports:
            print_report_details(console, _public_report(report, cfg))
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
    except (SyncBusy, FatalRunError) as exc:
        raise _Stopped(_stopped(name, exc, engine.config)) from None
    except ConfigError as exc:
        console.print(f"[red]config error[/]: {escape(_public(str(exc), engine.config))}")
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def check(
    config: ConfigOption = Path("espbridge.toml"),
    templates: Annotated[
        bool, typer.Option("--templates", help="Also check ESP templates' variables.")
    ] = False,
) -> None:
    """Validate the config and reach every source and destination it names.

    Exits 2 when the config itself is wrong (a cron expression), even if something was
    also unreachable: nothing can work until it is fixed. Else 3 when something failed.
    """
    from sync.checks import exit_code, run_checks

    cfg = _load(config)
    results = asyncio.run(run_checks(cfg, templates=templates))
    for item, ok, detail in results:
        mark = "[green]ok[/]" if ok else "[red]FAIL[/]"
        out.print(f"{mark}  {escape(item)}: {escape(detail)}")  # redacted by run_checks
    raise typer.Exit(exit_code(results))


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
        stopped = _stopped(sync, exc, cfg, busy_hint="; retry once that run has finished")
        if output == "json":  # stdout stays one document, as for `run`
            _emit_json(stopped.as_dict())
        raise typer.Exit(stopped.exit_code) from None
    report = _public_report(report, cfg)
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
    try:
        with _redacted_logs(cfg):  # failed runs are logged, with their reasons
            asyncio.run(
                run_schedule(
                    SyncEngine(cfg, store), stop, on_report=lambda r: out.print(report_table([r]))
                )
            )
    finally:
        store.close()


@app.command()
def sample(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the dataset.")] = Path(
        ".espbridge/sample"
    ),
    events: Annotated[int, typer.Option(help="How many events (1k to 10M).")] = 5000,
    seed: int = 42,
    warehouse: Annotated[
        str | None,
        typer.Option(
            help="Also load a DuckDB warehouse: a file path or a duckdb:/// URL.",
        ),
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

    warehouse_url = _duckdb_url(warehouse) if warehouse else None
    manifest = generate(
        out_dir,
        events=events,
        seed=seed,
        warehouse_url=warehouse_url,
        end=datetime.now(UTC) if end_now else None,
    )
    where = f"{out_dir / manifest['source_path']}" + (f" and {warehouse}" if warehouse else "")
    out.print(
        f"wrote {manifest['lines']:,} lines ({manifest['start']} to {manifest['end']}) to {where}"
    )
    out.print("planted: " + ", ".join(f"{k} {v}" for k, v in sorted(manifest["counts"].items())))


def _duckdb_url(warehouse: str) -> str:
    """`duckdb:///…` for a file path or a DuckDB URL; any other URL is a usage error."""
    if warehouse.startswith("duckdb:///") and len(warehouse) > len("duckdb:///"):
        return warehouse
    if "://" in warehouse or warehouse.startswith("duckdb:"):
        console.print(
            f"[red]usage error[/]: --warehouse {escape(display_url(warehouse))}: expected a file "
            "path or a duckdb:///path URL (the sample warehouse is DuckDB)"
        )
        raise typer.Exit(EXIT_CONFIG)
    return f"duckdb:///{warehouse}"


SANDBOX = (sys.executable, "-m", "esp_sandbox")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def sandbox(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default 8787).")] = None,
    faults: Annotated[
        str | None, typer.Option(help="Fault spec, e.g. 429=0.05,reset_after=0.02")
    ] = None,
    time_scale: Annotated[
        float | None,
        typer.Option(
            help="Speed-up of the rate-limit windows: 60 turns each minute window into a "
            "second (default 1).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    mailchimp_dc: Annotated[
        str | None, typer.Option(help="The Mailchimp data center served (default us1).")
    ] = None,
    klaviyo_api_key: Annotated[
        list[str] | None,
        typer.Option(help="Accept only this Klaviyo key (repeatable); default: any pk_ key."),
    ] = None,
) -> None:
    """Run the local ESP sandbox (Klaviyo at /api, Mailchimp at /3.0), by default on 127.0.0.1.

    Other options (e.g. --log-level) go to `python -m esp_sandbox` as given. SIGTERM and
    Ctrl-C are passed on to the sandbox, which is waited for.
    """
    # The sandbox is an independent implementation: run it as its own program.
    args = list(SANDBOX)
    for flag, value in (
        ("--host", host),
        ("--port", port),
        ("--faults", faults),
        ("--time-scale", time_scale),
        ("--seed", seed),
        ("--mailchimp-dc", mailchimp_dc),
    ):
        if value is not None:
            args += [flag, str(value)]
    for key in klaviyo_api_key or ():
        args += ["--klaviyo-api-key", key]
    raise typer.Exit(_run_forwarding_signals(args + list(ctx.args)))


def _run_forwarding_signals(args: list[str]) -> int:
    """Run `args` until it exits, passing SIGTERM and SIGINT on; return its exit status.

    The child gets its own process group, so Ctrl-C on a terminal reaches it once (through
    us) rather than twice (uvicorn reads a second Ctrl-C as "exit at once").
    """
    children: list[subprocess.Popen[bytes]] = []
    early: list[int] = []  # signals that came before the child existed

    def forward(signum: int, _frame: Any) -> None:
        if not children:
            early.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # Installed first: a SIGTERM while the child starts must not leave it behind.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        children.append(subprocess.Popen(args, env=os.environ.copy(), process_group=0))
        for signum in early:
            children[0].send_signal(signum)
        code = children[0].wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says


@app.command()
def serve(
    config: ConfigOption = Path("espbridge.toml"),
    # `\[` keeps rich from reading `[ingest]` as markup (and printing nothing).
    host: Annotated[str | None, typer.Option(help="Default: \\[ingest] host.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: \\[ingest] port.")] = None,
) -> None:
    """Accept Segment's HTTP API and webhooks, and send in real time.

    SIGTERM or Ctrl-C drains requests and the worker's batch; a second one exits at once.
    """
    from sync.ingest.serve import serve as serve_ingest

    cfg = _load(config)
    _store(cfg).close()  # unreachable: say so (redacted) and exit 3, as `run` does
    exit_on_second_signal()  # the first is uvicorn's: it drains requests, then the worker
    with _redacted_logs(cfg):
        try:
            serve_ingest(cfg, host=host, port=port)
        except Exception as exc:
            # Not a bare traceback: drivers put connection URLs in their messages.
            console.print(escape(_public("".join(traceback.format_exception(exc)), cfg)))
            raise typer.Exit(1) from None


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
