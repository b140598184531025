"""HTTP delivery to TradersPost: retries, backoff with jitter, Retry-After, rate limit.

Retry policy (money at stake, so "retry" must never mean "maybe send twice"):

- 2xx: sent.
- 429 (honour Retry-After), 5xx, connection refused, connect timeout: the
  broker did not take the order -> retry with exponential backoff + jitter,
  up to ``orders.max_attempts``.
- Other 4xx (and 3xx, redirects are not followed): rejected, never retried.
- Read timeout / connection dropped after the request went out: the broker
  MAY have the order. TradersPost has no idempotency key, so an entry is NOT
  retried (outcome ``ambiguous``, flagged for review; the gate keeps the slot
  counted). An exit IS retried: a second "exit" of a flat position is a no-op,
  a missing exit is open risk.

Clock, sleep and random are injected so tests run the whole schedule without
waiting.
"""

from __future__ import annotations

import email.utils
import logging
import random as _random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import requests
import urllib3

from multialpha import logs
from multialpha.config import OrdersSettings
from multialpha.orders.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class Attempt:
    number: int
    status: int | None  # HTTP status, None when no response
    error: str  # redacted
    delivered: str  # "yes" | "no" | "maybe"
    retry_in_s: float | None  # None: no further attempt
    response: str = ""  # first bytes of the body, redacted


@dataclass
class Result:
    result: str  # sent | rejected | failed | ambiguous | abandoned
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def detail(self) -> str:
        a = self.attempts[-1] if self.attempts else None
        if a is None:
            return ""
        return f"HTTP {a.status}" if a.status is not None else a.error


def backoff(policy: OrdersSettings, attempt: int, rand: Callable[[], float]) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random."""
    base = min(policy.backoff_max_s, policy.backoff_initial_s * (2 ** (attempt - 1)))
    return base / 2 + rand() * base / 2


def retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        secs = (when - now).total_seconds()
    if secs != secs:  # "nan" parses as a float; sleep(nan) raises
        return None
    return min(max(secs, 0.0), MAX_RETRY_AFTER_S)


def _classify(exc: requests.RequestException) -> str:
    """Did the request reach the server? 'no' is safe to retry, 'maybe' is not."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "no"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "maybe"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)):
            return "no"
        return "maybe"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return "no"
    return "maybe"


def deliver(
    session: requests.Session,
    url: str,
    body: bytes,
    policy: OrdersSettings,
    *,
    idempotent: bool,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    rand: Callable[[], float] = _random.random,
    limiter: RateLimiter | None = None,
    on_attempt: Callable[[Attempt], None] = lambda a: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Result:
    """POST ``body`` until it is sent, definitively rejected, or retries run out."""
    out = Result("failed")
    for n in range(1, policy.max_attempts + 1):
        if should_stop():
            out.result = _give_up(out, "abandoned")
            return out
        if limiter is not None and not limiter.acquire(sleep, should_stop):
            log.warning("no TradersPost rate-limit slot (or stopping): order not sent")
            out.result = _give_up(out, "abandoned")
            return out
        status: int | None = None
        error, text, delay_hint = "", "", None
        try:
            resp = session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=policy.timeout_s,
                allow_redirects=False,
            )
            status = resp.status_code
            text = logs.redact(resp.text[:300])
            if 200 <= status < 300:
                delivered, verdict = "yes", "sent"
            elif status == 429 or status >= 500:
                delivered, verdict = "no", "retry"
                if status == 429:
                    delay_hint = retry_after(resp.headers.get("Retry-After"), clock())
            else:
                delivered, verdict = "no", "rejected"
        except requests.RequestException as exc:
            error = logs.redact(f"{type(exc).__name__}: {exc}")
            delivered = _classify(exc)
            verdict = "retry" if delivered == "no" or idempotent else "ambiguous"
        retry_in = None
        if verdict == "retry" and n < policy.max_attempts:
            retry_in = delay_hint if delay_hint is not None else backoff(policy, n, rand)
        attempt = Attempt(n, status, error, delivered, retry_in, text)
        out.attempts.append(attempt)
        on_attempt(attempt)
        if verdict in ("sent", "rejected", "ambiguous"):
            out.result = verdict
            return out
        if retry_in is None:
            # Out of attempts. If any try may have landed, say so: a human checks.
            out.result = _give_up(out, "failed")
            return out
        sleep(retry_in)
    return out  # pragma: no cover - loop always returns


def _give_up(out: Result, otherwise: str) -> str:
    """Stopping early: if any try may have landed, a human must check."""
    if any(a.delivered == "maybe" for a in out.attempts):
        return "ambiguous"
    return otherwise if not out.attempts else "failed"
