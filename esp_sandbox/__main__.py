"""`python -m esp_sandbox`: run the ESP sandbox in the foreground."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from esp_sandbox.app import create_app
from esp_sandbox.context import SandboxConfig
from esp_sandbox.faults import FaultSpec, FaultSpecError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the README's sandbox section)."""
    parser = argparse.ArgumentParser(
        prog="python -m esp_sandbox",
        description="Fake Klaviyo / Mailchimp / Segment Profiles APIs on a local port.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument(
        "--faults", default=None, help="fault spec, e.g. '429=0.05,reset_after=0.01'"
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="speed-up of rate windows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mailchimp-dc", default="us1")
    parser.add_argument(
        "--klaviyo-api-key",
        action="append",
        default=None,
        help="accept only this Klaviyo key (repeatable); default: any pk_ key",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run uvicorn until interrupted."""
    args = parse_args(argv)
    try:
        faults = FaultSpec.parse(args.faults)
        config = SandboxConfig(
            faults=faults,
            time_scale=args.time_scale,
            seed=args.seed,
            mailchimp_dc=args.mailchimp_dc,
            klaviyo_api_keys=set(args.klaviyo_api_key) if args.klaviyo_api_key else None,
        )
    except (FaultSpecError, ValueError) as exc:
        print(f"esp_sandbox: {exc}", file=sys.stderr)
        return 2
    print(
        f"ESP sandbox on http://{args.host}:{args.port} "
        f"(Klaviyo /api, Mailchimp /3.0, introspection /_sandbox) "
        f"faults={faults.render() or 'none'} time_scale={args.time_scale} seed={args.seed}",
        flush=True,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
