"""Fake ESP server (Klaviyo, Mailchimp, Segment Profiles) for tests, demos and benchmarks.

It shares no code with `connectors/`; product code never imports it. Start it
with `python -m esp_sandbox` or, in-process, `with SandboxServer(config) as s:`.
"""

from esp_sandbox.context import SandboxConfig, SandboxContext

__all__ = ["SandboxConfig", "SandboxContext"]
