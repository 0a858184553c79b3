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
from dataclasses import dataclass, field, replace
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
    EXIT_UNEXPECTED,
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


LOCAL_COMMANDS = frozenset({"runs", "rejects", "triggers", "prune"})
"""Commands that only use the state store: they load `[state]` alone (`state_only`), so
an unset `${VAR}` of a destination or a source does not stop them."""


@app.callback()
def _main(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand in LOCAL_COMMANDS:
        # Also reaches sub-apps that load the config themselves (`triggers …`).
        ctx.with_resource(state_only())


def _load(path: Path) -> Config:
    try:
        return _config(path)
    except _Stopped as exc:
        raise typer.Exit(exc.stopped.exit_code) from None


def _config(path: Path) -> Config:
    """The config, or `_Stopped` (exit 2) once the reason is on stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _config_error(str(exc)) from None


def _store(config: Config) -> StateStore:
    try:
        return _open_store(config)
    except _Stopped as exc:
        raise typer.Exit(exc.stopped.exit_code) from None


def _open_store(config: Config) -> StateStore:
    """The state store, or `_Stopped` (exit 3) once the reason is on stderr (redacted)."""
    try:
        return StateStore.open(config.state.url, secrets=config_secrets(config))
    except Exception as exc:  # the state store is unreachable: fatal
        detail = _public(f"({display_url(config.state.url)}): {exc}", config)
        console.print("[red]state store unreachable[/] " + escape(detail))
        reason = f"state store unreachable {detail}"
        raise _Stopped(StoppedRun(None, "failed", EXIT_FATAL, reason)) from None


class _Stopped(Exception):
    """Something ended `run` or `retry` early; the reason is already on stderr (redacted).

    A config error, a busy or fatal sync, or an unexpected error: `_one_document` turns it
    into the command's exit code and, with `-o json`, its JSON entry.
    """

    def __init__(self, stopped: StoppedRun) -> None:
        super().__init__(stopped.error)
        self.stopped = stopped


def _config_error(
    message: str,
    config: Config | None = None,
    *,
    sync: str | None = None,
    label: str = "config error",
) -> _Stopped:
    """Say on stderr why the command cannot go on (exit 2), redacted; raise what it returns.

    Before the config is loaded no configured secret is known, but URLs and `password=`
    pairs are hidden all the same (`redact_text`).
    """
    reason = redact_text(message, config_secrets(config) if config else ())
    console.print(f"[red]{label}[/]: {escape(reason)}")
    return _Stopped(StoppedRun(sync, "failed", EXIT_CONFIG, reason))


@dataclass(slots=True)
class _Progress:
    """How far `run` or `retry` got: what `_one_document` needs if something stops it."""

    config: Config | None = None  # once loaded, its secrets are redacted
    sync: str | None = None  # the sync running
    done: list[dict[str, Any]] = field(default_factory=list)  # completed reports, redacted


@contextmanager
def _one_document(output: str, *, listed: bool) -> Iterator[_Progress]:
    """Whatever stops `run` or `retry`, `-o json` still prints one JSON document on stdout.

    A config error (exit 2), a fatal (3) or busy (5) sync, an unexpected error (1): the
    reason, redacted and already on stderr, becomes a `StoppedRun` entry after the reports
    of the syncs that completed (`listed`: `run`'s list), or the document itself (`retry`).
    A script piping `-o json` into `jq` gets the reason, not an empty document.
    """
    progress = _Progress()
    try:
        yield progress
    except _Stopped as exc:
        stopped = exc.stopped
    except typer.Exit:  # the command's own end: its output is printed already
        raise
    except Exception as exc:
        stopped = _unexpected(exc, progress)
    else:
        return
    if output == "json":
        entry = stopped.as_dict()
        _emit_json([*progress.done, entry] if listed else entry)
    raise typer.Exit(stopped.exit_code)


def _unexpected(exc: Exception, progress: _Progress) -> StoppedRun:
    """An error nothing expected (exit 1): its traceback on stderr, redacted as errors are."""
    secrets = config_secrets(progress.config) if progress.config else set()
    console.print(escape(redact_text("".join(traceback.format_exception(exc)), secrets)))
    reason = redact_text(f"{type(exc).__name__}: {exc}", secrets)
    return StoppedRun(progress.sync, "failed", EXIT_UNEXPECTED, reason)


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
    with _one_document(output, listed=True) as progress:
        if dry_run and output == "json" and dry_run_file is None:
            # Both would go to stdout, and the report would no longer parse as one document.
            raise _config_error(
                "--dry-run with --output json needs --dry-run-file "
                "(the requests and the report cannot share stdout)",
                label="usage error",
            )
        cfg = progress.config = _config(config)
        names = sync or list(cfg.syncs)
        unknown = [n for n in names if n not in cfg.syncs]
        if unknown or not names:
            names_given = ", ".join(unknown) or "(none configured)"
            raise _config_error(f"no sync named {names_given}", cfg)
        _run_syncs(cfg, names, dry_run, dry_run_file, output, progress)


def _run_syncs(
    cfg: Config,
    names: list[str],
    dry_run: bool,
    dry_run_file: Path | None,
    output: str,
    progress: _Progress,
) -> None:
    """Run `names` one after another and print their reports; exit 0, or 4 for rejects."""
    store = _open_store(cfg)
    sink = dry_run_file.open("w", encoding="utf-8") if dry_run_file else sys.stdout
    # Requests on stdout are JSON lines for a pipe: the report goes to stderr then.
    report_out = console if dry_run and dry_run_file is None else out
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reports: list[RunReport] = []
    code = 0
    try:
        engine = SyncEngine(cfg, store, dry_run_out=sink)
        for name in names:
            progress.sync = name
            report = _run_one(engine, name, dry_run, stop, show_progress=output == "text")
            progress.sync = None
            reports.append(report)
            progress.done.append(_public_report(report, cfg).as_dict())
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
        _emit_json(progress.done)
    else:
        report_out.print(report_table(reports))
        for report in reports:
            print_report_details(console, _public_report(report, cfg))
    raise typer.Exit(code)


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
        raise _config_error(str(exc), engine.config, sync=name) from None


@app.command()
def check(
    config: ConfigOption = Path("espbridge.toml"),
    templates: Annotated[
        bool, typer.Option("--templates", help="Also check ESP templates' variables.")
    ] = False,
) -> None:
    """Validate the config and reach every source and destination it names.

    Exits 2 when the config or the ESP account's setup must change (a cron expression, a
    merge field the audience lacks, a template variable left empty, an id the ESP does not
    know), even if something was also unreachable: nothing can work until it is fixed.
    Else 3 when something could not be reached (network, 5xx, credentials refused).
    """
    from sync.checks import exit_code, run_checks

    cfg = _load(config)
    results = asyncio.run(run_checks(cfg, templates=templates))
    for item, ok, detail, _ in results:
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
def prune(config: ConfigOption = Path("espbridge.toml"), output: OutputOption = "text") -> None:
    """Delete now what the state retention settings no longer keep, and say how much.

    Runs do it by themselves once an hour (a few seconds at a time); this runs to the end.
    The settings are `sent_ledger_retention_days`, `rejects_retention_days` and
    `runs_retention_days` of the state section; 0 keeps a table forever.
    """
    from sync.store.retention import Retention
    from sync.store.retention import prune as prune_store

    cfg = _load(config)
    store = _store(cfg)
    try:
        pruned = prune_store(store, Retention.of(cfg.state))
    finally:
        store.close()
    if output == "json":
        _emit_json(pruned.as_dict())
        return
    for name, cutoff in pruned.cutoffs.items():
        if cutoff is None:
            out.print(f"{name}: kept forever (retention 0 days)")
            continue
        out.print(
            f"{name}: deleted {pruned.counts.get(name, 0):,} rows older than "
            f"{pruned.days[name]} days (before {cutoff:%Y-%m-%d %H:%M} UTC)"
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
    with _one_document(output, listed=False) as progress:
        cfg = progress.config = _config(config)
        if sync not in cfg.syncs:
            raise _config_error(f"--sync must name a configured sync, got {sync!r}", cfg)
        store = _open_store(cfg)
        progress.sync = sync
        try:
            rows = [
                r
                for r in store.rejects(sync=sync, run_id=run_id, limit=None)
                if r["stage"] != "source"
            ]
            report = asyncio.run(SyncEngine(cfg, store).retry(sync, rows))
        except (SyncBusy, FatalRunError) as exc:
            hint = "; retry once that run has finished"
            raise _Stopped(_stopped(sync, exc, cfg, busy_hint=hint)) from None
        finally:
            store.close()
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
