"""HTTP plumbing shared by every ESP client: classify, retry, rate-limit, redact.

One place classifies responses (429/5xx/network are retried honouring Retry-After;
other 4xx become `RejectedPayload` with the ESP's reason). The transport is injected
by the caller, so the same client runs against `httpx.MockTransport`, the sandbox or
the real API.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from connectors.errors import (
    AuthFailed,
    RateLimited,
    Redirected,
    RejectedPayload,
    RetryableESPError,
    ServerError,
    TransportFailure,
)

T = TypeVar("T")
ErrorParser = Callable[[httpx.Response], tuple[str, str | None]]
"""Extracts (detail, pointer) from an ESP error body."""

SENSITIVE_HEADERS = frozenset({"authorization", "x-api-key", "x-signature", "cookie"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with secrets replaced by `[secure]`, for logs and dry-run output."""
    return {k: "[secure]" if k.lower() in SENSITIVE_HEADERS else v for k, v in headers.items()}


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def text_reason(response: httpx.Response, limit: int = 500) -> str:
    """A readable reason from a body that is not the ESP's JSON (a proxy's HTML page).

    An HTML page becomes its `<title>` (else its text without tags), so a reject says
    "413 Request Entity Too Large" rather than carrying markup.
    """
    text = response.text
    if "<" in text and ("html" in response.headers.get("content-type", "") or "<html" in text):
        found = _TITLE.search(text)
        text = found.group(1) if found else _TAG.sub(" ", text)
    text = " ".join(text.split())[:limit]
    return text or f"HTTP {response.status_code}"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds the ESP asked us to wait (`Retry-After`, seconds or HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def classify(response: httpx.Response, parse_error: ErrorParser) -> None:
    """Raise the right `ESPError` for a non-2xx response; return for a 2xx.

    Args:
        response: The ESP's answer.
        parse_error: The ESP's own error-body reader.
    """
    status = response.status_code
    if status < 300:
        return
    if status < 400:
        # A redirect is never a delivery: the request did not reach the API.
        where = response.headers.get("Location", "(no Location)")
        raise Redirected(
            f"{status} from {response.url.path}: redirected to {where}; check base_url"
        )
    if status == 429:
        raise RateLimited(f"429 from {response.url.path}", retry_after_seconds(response))
    if status >= 500:
        raise ServerError(f"{status} from {response.url.path}", status)
    detail, pointer = parse_error(response)
    if status in (401, 403):
        raise AuthFailed(f"{status} from {response.url.path}: {detail}")
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:2000]
    raise RejectedPayload(status, detail, pointer, body)


def _is_uncertain(exc: httpx.TransportError) -> bool:
    # Connect errors happen before a byte of the request is sent; anything later may
    # have reached the ESP and been applied.
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; the ESP's Retry-After wins when given."""

    max_attempts: int = 6
    initial: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5

    def floor(self, attempt: int) -> float:
        """The backoff without jitter after failed attempt number `attempt` (1-based), capped."""
        return min(self.initial * 2.0 ** (attempt - 1), self.max_delay)

    def wait(self, state: RetryCallState) -> float:
        """Seconds to wait before the next attempt.

        A `Retry-After` of at least `initial` is honoured as given (up to `max_delay`):
        waiting longer than the ESP asked would only slow a throttled sync down. A
        shorter one (`0`, a date already past) gets the backoff instead, or a throttled
        ESP would see every attempt spent within milliseconds.
        """
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            asked = exc.retry_after
            wait = asked if asked >= self.initial else self.floor(state.attempt_number)
            return min(wait, self.max_delay)
        backoff = wait_exponential_jitter(
            initial=self.initial, max=self.max_delay, jitter=self.jitter
        )
        return float(backoff(state))


async def send(
    request: Callable[[], Awaitable[httpx.Response]],
    parse_error: ErrorParser,
    policy: RetryPolicy,
    *,
    on_retry: Callable[[BaseException], Awaitable[None]] | None = None,
) -> httpx.Response:
    """Send a request, retrying what is retryable; raise `FatalESPError` for the rest.

    Args:
        request: Makes one attempt (a fresh coroutine each time).
        parse_error: The ESP's error-body reader.
        policy: Backoff policy.
        on_retry: Awaited with the error before each retry (e.g. to slow a limiter).
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(RetryableESPError),
        wait=policy.wait,
        stop=stop_after_attempt(policy.max_attempts),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            if on_retry and attempt.retry_state.attempt_number > 1 and attempt.retry_state.outcome:
                error = attempt.retry_state.outcome.exception()
                if error is not None:
                    await on_retry(error)
            try:
                response = await request()
            except httpx.TransportError as exc:
                raise TransportFailure(
                    f"{type(exc).__name__}: {exc}", uncertain=_is_uncertain(exc)
                ) from exc
            classify(response, parse_error)
            return response
    raise AssertionError("unreachable")  # pragma: no cover


async def gather_or_cancel(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run requests concurrently; their results in order, or the first error.

    Unlike `asyncio.gather`, the first failure (credentials refused, retries exhausted)
    cancels the siblings at once: the run has failed, so they would only go on sending
    and backing off for nothing. The error is raised as itself, not inside an
    `ExceptionGroup`, so callers and the engine see the `ESPError` it is.

    Args:
        coroutines: The requests (coroutines not yet started).

    Returns:
        Each coroutine's result, in the order given.
    """
    tasks: list[asyncio.Task[T]] = []
    first: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]  # in the order they happened
    if first is not None:
        raise first  # outside the handler, so the group is not chained as its context
    return [task.result() for task in tasks]


class SlidingWindowLimiter:
    """At most `limit` acquisitions in any sliding `window` seconds.

    A sliding window is never looser than the ESP's fixed windows, whatever their
    alignment, so a client that obeys it is never throttled, and in the long run it
    still reaches the full published rate.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    def used(self) -> int:
        """Acquisitions inside the current window (ours only, not other processes')."""
        now = time.monotonic()
        return sum(1 for stamp in self._stamps if stamp > now - self.window)

    def pause(self, seconds: float) -> None:
        """Stop granting for `seconds` (after a 429, or RateLimit-Remaining: 0)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self) -> None:
        """Wait until one more request fits the window, then take it."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self._stamps[0] + self.window - now)


@dataclass(frozen=True, slots=True)
class RateTier:
    """A published rate limit: `burst` per second and `steady` per minute."""

    burst: int
    steady: int


class TierLimiter:
    """Burst (1 s) and steady (60 s) windows of one endpoint tier for one account."""

    def __init__(self, tier: RateTier, time_scale: float = 1.0) -> None:
        self.burst = SlidingWindowLimiter(tier.burst, 1.0 / time_scale)
        self.steady = SlidingWindowLimiter(tier.steady, 60.0 / time_scale)

    async def acquire(self) -> None:
        """Wait for room in both windows."""
        await self.steady.acquire()
        await self.burst.acquire()

    def pause(self, seconds: float) -> None:
        """Hold both windows (after a 429)."""
        self.steady.pause(seconds)


_LIMITERS: dict[tuple[str, str], TierLimiter] = {}


def shared_limiter(
    account: str, tier_name: str, tier: RateTier, time_scale: float = 1.0
) -> TierLimiter:
    """The process-wide limiter for an account's tier, shared by every sync.

    Args:
        account: A non-secret account identity (e.g. a hash of the API key).
        tier_name: The tier or endpoint name, e.g. `M` or `XL`.
        tier: Its limits.
        time_scale: Divides the windows (the sandbox's `--time-scale`).
    """
    key = (account, f"{tier_name}:{tier.burst}:{tier.steady}:{time_scale}")
    limiter = _LIMITERS.get(key)
    if limiter is None:
        limiter = _LIMITERS[key] = TierLimiter(tier, time_scale)
    return limiter
