"""`espbridge check`: 2 for what the user fixes in the config or the ESP account, 3 for an
ESP (or anything else) that cannot be reached.

Before, every preflight or template finding exited 3, as if the ESP were down: a script
(or a person) retrying later would wait for nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esp_sandbox.context import SandboxConfig
from esp_sandbox.server import SandboxServer
from sync.cli import app

runner = CliRunner()
MC_KEY = "0123456789abcdef0123456789abcdef-us1"
LIST_ID = "a1b2c3d4e5"  # the sandbox's seeded audience


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=3)) as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check(tmp_path: Path, destinations: str, *extra: str) -> tuple[int, str]:
    path = tmp_path / "espbridge.toml"
    path.write_text(f'[state]\nurl = "sqlite:///{tmp_path}/state.db"\n{destinations}')
    result = runner.invoke(app, ["check", "-c", str(path), *extra])
    return result.exit_code, result.stdout


def _mailchimp(base_url: str, list_id: str = LIST_ID, fields: str = "") -> str:
    return f"""
[destinations.mc]
type = "mailchimp"
api_key = "{MC_KEY}"
base_url = "{base_url}"
list_id = "{list_id}"
retry = {{ initial_seconds = 0.01, max_delay_seconds = 0.05 }}
[destinations.mc.merge_fields]
FNAME = {{ path = "traits.first_name" }}
{fields}
"""


def _klaviyo(base_url: str, template: str, fields: str) -> str:
    return f"""
[destinations.kl]
type = "klaviyo"
api_key = "pk_check_exit_codes"
base_url = "{base_url}"
[[templates]]
destination = "kl"
template = "{template}"
[templates.fields]
{fields}
"""


def test_a_clean_mailchimp_preflight_exits_0(tmp_path: Path, sandbox: SandboxServer) -> None:
    code, stdout = _check(tmp_path, _mailchimp(sandbox.mailchimp_url))
    assert code == 0, stdout
    assert "ok  preflight mc: every mapped merge field exists" in stdout


def test_a_merge_field_the_audience_lacks_exits_2(tmp_path: Path, sandbox: SandboxServer) -> None:
    fields = 'NICKNAME = { path = "traits.nickname" }'
    code, stdout = _check(tmp_path, _mailchimp(sandbox.mailchimp_url, fields=fields))
    assert code == 2, stdout
    assert f"FAIL  preflight mc: merge_fields.NICKNAME: audience {LIST_ID} has no" in stdout
    assert "ok  destination mc:" in stdout  # the ESP itself answered


def test_a_declared_type_the_audience_does_not_have_exits_2(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    fields = 'PHONE = { path = "traits.phone", type = "number" }'
    code, stdout = _check(tmp_path, _mailchimp(sandbox.mailchimp_url, fields=fields))
    assert code == 2, stdout
    assert "FAIL  preflight mc: merge_fields.PHONE: declared type 'number'" in stdout


def test_an_audience_the_account_does_not_have_exits_2(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    code, stdout = _check(tmp_path, _mailchimp(sandbox.mailchimp_url, list_id="nosuchlist"))
    assert code == 2, stdout
    assert "FAIL  destination mc: RejectedPayload: 404" in stdout
    assert "audience nosuchlist" in stdout


def test_a_template_variable_the_mapping_leaves_empty_exits_2(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    fields = '"person.email" = { path = "traits.email", fallback = "friend" }'
    config = _klaviyo(sandbox.klaviyo_url, "Abandoned cart", fields)
    code, stdout = _check(tmp_path, config, "--templates")
    assert code == 2, stdout
    assert "FAIL  template klaviyo:Abandoned cart (TplCart): error: event.ProductName" in stdout


def test_a_template_the_account_does_not_have_exits_2(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    config = _klaviyo(sandbox.klaviyo_url, "No such template", "")
    code, stdout = _check(tmp_path, config, "--templates")
    assert code == 2, stdout
    assert "cannot read the template: no Klaviyo template with this id or name" in stdout


def test_a_template_whose_esp_cannot_be_reached_stays_3(tmp_path: Path) -> None:
    config = _klaviyo(f"http://127.0.0.1:{_closed_port()}", "Abandoned cart", "")
    code, stdout = _check(tmp_path, config, "--templates")
    assert code == 3, stdout
    assert "FAIL  template kl:Abandoned cart: error: cannot read the template" in stdout


def test_a_config_finding_wins_over_an_unreachable_esp(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    fields = 'NICKNAME = { path = "traits.nickname" }'
    down = _mailchimp(f"http://127.0.0.1:{_closed_port()}/3.0").replace(
        "[destinations.mc", "[destinations.down"
    )
    code, stdout = _check(tmp_path, _mailchimp(sandbox.mailchimp_url, fields=fields) + down)
    assert code == 2, stdout
    assert "FAIL  destination down: TransportFailure" in stdout
