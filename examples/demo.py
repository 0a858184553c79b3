"""`make demo`: sample data → espbridge → the local ESP sandbox, twice.

1. Writes the deterministic sample (Segment S3 layout and a DuckDB warehouse), once.
2. Starts the ESP sandbox on 127.0.0.1 (an ephemeral port) in this process.
3. Runs `espbridge check` and `espbridge run` on examples/demo.toml, as a user would.
4. Runs again: nothing already acknowledged is sent again.
5. Prints what the sandbox ESPs received.

The state store persists in .espbridge/demo/, so a second `make demo` also sends nothing
that was already acknowledged. `make clean` starts over.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".espbridge" / "demo"
CONFIG = ROOT / "examples" / "demo.toml"
EVENTS = int(os.environ.get("DEMO_EVENTS", "5000"))
KLAVIYO_KEY = "pk_demo_0123456789"
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us1"
console = Console()


def ensure_sample() -> None:
    """Generate the sample once; later demos reuse it (and the cursors stay valid)."""
    if (DEMO / "sample" / "manifest.json").exists():
        console.print(f"sample already at {DEMO / 'sample'}")
        return
    from connectors.sample import generate

    generate(
        DEMO / "sample",
        events=EVENTS,
        seed=42,
        warehouse_url=f"duckdb:///{DEMO / 'sample' / 'warehouse.duckdb'}",
        # Ends now: trigger freshness is measured against the wall clock.
        end=datetime.now(UTC) - timedelta(minutes=10),
    )
    console.print(f"wrote {EVENTS:,} sample events to {DEMO / 'sample'}")


def espbridge(*args: str, env: dict[str, str]) -> int:
    """Run the real CLI, as a user would."""
    console.rule(f"espbridge {' '.join(args)}")
    return subprocess.call([sys.executable, "-m", "sync.cli", *args], cwd=ROOT, env=env)


def summarise(state: dict[str, Any]) -> Table:
    """What the sandbox ESPs now hold (their ground truth, from /_sandbox/state)."""
    table = Table(title="what the sandbox ESPs hold")
    for column, justify in (("ESP", "left"), ("what", "left"), ("count", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    klaviyo, mailchimp = state["klaviyo"], state["mailchimp"]
    table.add_row("Klaviyo", "profiles", str(len(klaviyo["profiles"])))
    metrics: Counter[str] = Counter()
    for per_metric in klaviyo["events"].values():
        for metric, events in per_metric.items():
            metrics[metric] += len(events)
    for metric, count in sorted(metrics.items()):
        table.add_row("Klaviyo", f"events: {metric}", str(count))
    table.add_row(
        "Klaviyo", "duplicates dropped by unique_id", str(klaviyo["dropped_duplicate_events"])
    )
    for list_id, audience in mailchimp["lists"].items():
        members = audience["members"].values()
        table.add_row("Mailchimp", f"audience {list_id}: members", str(len(members)))
        names: Counter[str] = Counter(e["name"] for m in members for e in m["events"])
        for name, count in sorted(names.items()):
            table.add_row("Mailchimp", f"member events: {name}", str(count))
    table.add_row("Mailchimp", "journey triggers", str(len(mailchimp["journey_triggers"])))
    return table


def main() -> int:
    from esp_sandbox.server import SandboxConfig, SandboxServer

    DEMO.mkdir(parents=True, exist_ok=True)
    ensure_sample()
    with SandboxServer(SandboxConfig(seed=42)) as sandbox:
        env = {
            **os.environ,
            "ESPBRIDGE_SANDBOX_URL": sandbox.url,
            "KLAVIYO_API_KEY": KLAVIYO_KEY,
            "MAILCHIMP_API_KEY": MAILCHIMP_KEY,
            "MAILCHIMP_LIST_ID": "a1b2c3d4e5",  # the audience the sandbox starts with
        }
        console.print(f"ESP sandbox listening on {sandbox.url}")
        if espbridge("check", "--config", str(CONFIG), env=env) != 0:
            return 1
        first = espbridge("run", "--config", str(CONFIG), env=env)
        console.print(summarise(sandbox.state()))
        console.print(
            "[bold]Running again: everything acknowledged above is skipped, nothing is resent.[/]"
        )
        second = espbridge("run", "--config", str(CONFIG), env=env)
        console.print(summarise(sandbox.state()))
        espbridge("rejects", "--config", str(CONFIG), "--limit", "10", env=env)
    return first or second


if __name__ == "__main__":
    sys.exit(main())
