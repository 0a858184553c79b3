"""Errors raised by destination clients.

The tree (one place decides which is which: `connectors.http.classify`)::

    ESPError
    ├── RetryableESPError          retried with backoff, never a reject by itself
    │   ├── RateLimited            429 (and Mailchimp's throttling 403), honours Retry-After
    │   ├── ServerError            5xx
    │   └── TransportFailure       connection refused/reset, timeouts
    └── FatalESPError              never retried
        ├── RejectedPayload        any other 4xx: becomes a RejectedRow with the ESP's detail
        ├── AuthFailed             401/403: the whole run stops (exit code 3)
        │   └── Redirected         3xx: base_url is wrong; the run stops too (exit code 3)
        ├── MalformedResponse      a 2xx whose body lacks what we must read
        └── JobUnfinished          an ESP job (bulk import, batch) did not finish in time
"""

from __future__ import annotations

from typing import Any


class SourceUnavailable(Exception):
    """A source cannot be reached, listed or queried: the run stops (exit code 3).

    The message names the source and the reason (never a secret).
    """


class ESPError(Exception):
    """Base of every destination error."""


class RetryableESPError(ESPError):
    """A failure that may succeed if sent again."""


class RateLimited(RetryableESPError):
    """The ESP throttled us; `retry_after` is seconds to wait, when the ESP said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(RetryableESPError):
    """The ESP answered 5xx."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TransportFailure(RetryableESPError):
    """No usable answer: connection failed, reset or timed out.

    `uncertain` is True when the request may have reached the ESP (it was written and
    the answer was lost), the case in which a non-idempotent send must be checked
    before it is repeated.
    """

    def __init__(self, message: str, *, uncertain: bool) -> None:
        super().__init__(message)
        self.uncertain = uncertain


class FatalESPError(ESPError):
    """A failure that sending again cannot fix."""


class RejectedPayload(FatalESPError):
    """The ESP refused the request (4xx) and said why.

    Attributes:
        status: HTTP status.
        detail: The ESP's reason, verbatim.
        pointer: Where in the body, e.g. `/data/attributes/email` (Klaviyo) or a field name.
        body: The parsed error body.
    """

    def __init__(
        self, status: int, detail: str, pointer: str | None = None, body: Any = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.pointer = pointer
        self.body = body


class AuthFailed(FatalESPError):
    """Credentials were refused; nothing will work until the config is fixed."""


class Redirected(AuthFailed):
    """The ESP (or a proxy) answered 3xx: the configured base URL is not the API.

    Not followed: a redirected POST may lose its body or its credential, and every
    later request would be redirected too. A subclass of `AuthFailed` so the run
    stops (exit code 3) instead of counting a redirect as delivered.
    """


class MalformedResponse(FatalESPError):
    """A 2xx answer without what must be read from it (a job id, a status, results).

    The records it concerns are neither acknowledged nor rejected: the run fails and
    the next run sends them again (every such request is an idempotent upsert or a
    status read).
    """


class JobUnfinished(FatalESPError):
    """An ESP's asynchronous job (a Klaviyo bulk import) did not finish in time.

    Its rows are neither acknowledged nor rejected: the run stops (exit code 3) and the
    next run sends them again, which is safe because such jobs are idempotent imports.
    (Mailchimp's `BatchTimeout` is one too, but is handled where it is raised: the
    batch's operations are sent directly instead.)
    Not the built-in `TimeoutError`: the engine ends a run cleanly only for `ESPError`,
    and a `TimeoutError` is an `OSError` that I/O handlers may swallow.

    Attributes:
        job_id: The ESP's id of the job, to look it up in the ESP.
    """

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id
