"""One list of credential names serves redaction and free-form source options."""

from __future__ import annotations

import pytest

from connectors.secrets import is_secret_key


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "API-KEY",
        "writeKey",
        "Authorization",
        "aws_session_token",
        "client_secret",
        "sslpassword",
        "account_key",
        "accountKey",  # Azure storage options
        "connection_string",
        "connectionString",
        "private_key",  # a service account's key in GCS options
        "credentials",
    ],
)
def test_credential_names_are_secret_however_spelt(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["key", "endpoint_url", "email", "first_name", "region"])
def test_other_names_are_not(name: str) -> None:
    # An S3 access key id (`key`) names the credential; it is not the secret itself.
    assert not is_secret_key(name)
