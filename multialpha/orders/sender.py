"""HTTP delivery to TradersPost: retries, backoff with jitter, Retry-After, rate limit, deadline.

Money is at stake, so "retry" must never mean "maybe send twice", and "not
sure" must never be reported as "sent". TradersPost has no idempotency key: a
resent ENTRY whose first POST landed doubles the position. A resent EXIT of a
flat position is a no-op, while a lost exit is open risk. Hence:

| answer                               | delivered | what happens (and why)                                  |
|--------------------------------------|-----------|---------------------------------------------------------|
| 2xx, body `{"success": true, ...}`   | yes       | `sent`.                                                 |
| 2xx, body `{"success": false, ...}`  | no        | `rejected`, never retried: TradersPost says it did not  |
|                                      |           | place it; the same payload would get the same no.       |
| 2xx, any other body                  | maybe     | `ambiguous`, never resent, entries AND exits: without   |
|                                      |           | the documented `success` flag (empty, HTML from a       |
|                                      |           | proxy, truncated) we cannot tell it was placed.         |
| 429                                  | no        | retry after `Retry-After` (seconds or HTTP date), else  |
|                                      |           | backoff: refused before the order was taken.            |
| 5xx (also 1xx, > 599)                | maybe     | entry: `ambiguous`, NEVER resent (a 502/504 from a      |
|                                      |           | proxy can come after TradersPost accepted the order).   |
|                                      |           | exit: retried with backoff (a 2nd exit is a no-op).     |
| connection refused / connect timeout | no        | retried with backoff, entries and exits: nothing left   |
|                                      |           | this machine, so nothing can have landed.               |
| read timeout / connection dropped    | maybe     | entry: `ambiguous`, never resent; exit: retried.        |
| after the request was written        |           |                                                         |
| other 4xx, 3xx                       | no        | `rejected`, never retried (redirects are not followed:  |
|                                      |           | the URL carries a password).                            |

Backoff is exponential, ``min(max, initial * 2^(n-1))`` with equal jitter, up
to ``orders.max_attempts`` tries. After the last try: ``failed`` if nothing
may have landed, else ``ambiguous`` (a human checks the broker).

Deadline (entries: the signal bar's close + ``orders.max_age_s``; exits: None).
An entry signal goes stale: a market order placed minutes after its bar is a
different trade than the one the strategy decided. So before EVERY attempt,
after the rate-limit wait, ``clock() > deadline`` means the order is not sent
(``expired``). The rate-limit wait is bounded by the time left (no waiting for
a slot that opens after the deadline), and a backoff / Retry-After delay that
would end after the deadline is not slept at all. If an earlier try may have
landed the result is ``ambiguous`` instead (never claim "nothing was placed"
when something may have been). Exits have no deadline: reducing risk late is
better than not at all.

Result.result values:

- ``sent``: TradersPost answered 2xx with ``success: true``.
- ``rejected``: TradersPost (or a 3xx/4xx) said no; nothing was placed.
- ``failed``: out of attempts; no try may have landed.
- ``ambiguous``: some try may have landed; never resent, a human checks.
- ``abandoned``: stopping (shutdown), or no rate-limit slot within 2 h and no
  deadline, before any try: nothing was sent. (After tries: ``ambiguous`` if
  one may have landed, else ``failed``.)
- ``expired``: the deadline passed before the order could be (re)sent; no try
  landed (possibly zero tries).

Clock, sleep and random are injected so tests run the whole schedule without
waiting.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random as _random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import requests
import urllib3

from multialpha import cme_time, logs
from multialpha.config import OrdersSettings
from multialpha.orders.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 3600.0

RESULTS = ("sent", "rejected", "failed", "ambiguous", "abandoned", "expired")


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
    result: str  # one of RESULTS
    attempts: list[Attempt] = field(default_factory=list)
    note: str = ""  # why delivery stopped when no HTTP answer says it (e.g. the deadline)

    @property
    def detail(self) -> str:
        a = self.attempts[-1] if self.attempts else None
        last = "" if a is None else (f"HTTP {a.status}" if a.status is not None else a.error)
        return "; ".join(p for p in (last, self.note) if p)


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


def _success_flag(content: bytes) -> bool | None:
    """The ``success`` boolean of a 2xx body, or None if the body does not have one.

    The spec's 200 body is ``{"success": bool, "id", "logId", "payload"}``; only
    the boolean decides (``"true"`` or ``1`` is not the documented answer)."""
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):  # not JSON / not UTF-8 / absurdly nested
        return None
    if isinstance(doc, dict) and isinstance(doc.get("success"), bool):
        return doc["success"]
    return None


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
    deadline: datetime | None = None,
) -> Result:
    """POST ``body`` until it is sent, definitively rejected, found ambiguous,
    out of retries, or past ``deadline`` (None: no deadline).

    ``idempotent``: True for exits (a duplicate is harmless, so anything not
    definitive is retried), False for entries (anything that may have landed
    is never resent)."""
    if deadline is not None and deadline.utcoffset() is None:
        # Comparing it with the (UTC) clock would fail mid-delivery; refuse before sending anything.
        raise TypeError("deliver(deadline=...) must be timezone-aware")

    def past_deadline() -> bool:
        return deadline is not None and clock() > deadline

    out = Result("failed")
    for n in range(1, policy.max_attempts + 1):
        if should_stop():
            out.result = _give_up(out, "abandoned")
            return out
        if past_deadline():
            # Checked before the limiter too, so a dead order does not burn a shared rate-limit slot.
            return _expire(out, f"deadline {_iso(deadline)} passed before attempt {n}")
        if limiter is not None:
            if deadline is None:
                got = limiter.acquire(sleep, should_stop)
            else:
                # Never wait for a slot that only opens after the deadline.
                left = max(0.0, (deadline - clock()).total_seconds())
                got = limiter.acquire(sleep, should_stop, give_up_s=left)
            if not got:
                if deadline is not None and (past_deadline() or not should_stop()):
                    return _expire(out, f"no rate-limit slot before the deadline {_iso(deadline)}")
                log.warning("no TradersPost rate-limit slot (or stopping): order not sent")
                out.result = _give_up(out, "abandoned")
                return out
        if past_deadline():  # the rate-limit wait (or a slow Redis) used up the time left
            return _expire(out, f"deadline {_iso(deadline)} passed while waiting for a rate-limit slot")
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
                # A 2xx alone is not "placed": TradersPost says so in the body.
                flag = _success_flag(resp.content)
                if flag is True:
                    delivered, verdict = "yes", "sent"
                elif flag is False:
                    delivered, verdict = "no", "rejected"
                else:
                    delivered, verdict = "maybe", "ambiguous"
            elif status == 429:
                # The rate limiter answered before the order was taken: safe to resend.
                delivered, verdict = "no", "retry"
                delay_hint = retry_after(resp.headers.get("Retry-After"), clock())
            elif 300 <= status < 500:
                delivered, verdict = "no", "rejected"
            else:
                # 5xx (and nonsense like 1xx or 6xx): may come from a proxy AFTER
                # TradersPost accepted the order. Only an exit may be resent.
                delivered = "maybe"
                verdict = "retry" if idempotent else "ambiguous"
        except requests.RequestException as exc:
            error = logs.redact(f"{type(exc).__name__}: {exc}")
            delivered = _classify(exc)
            verdict = "retry" if delivered == "no" or idempotent else "ambiguous"
        retry_in = None
        expires = False
        if verdict == "retry" and n < policy.max_attempts:
            retry_in = delay_hint if delay_hint is not None else backoff(policy, n, rand)
            if deadline is not None and clock() + timedelta(seconds=retry_in) > deadline:
                # The next try could only go out after the deadline: do not sleep for nothing.
                retry_in, expires = None, True
        attempt = Attempt(n, status, error, delivered, retry_in, text)
        out.attempts.append(attempt)
        on_attempt(attempt)
        if verdict in ("sent", "rejected", "ambiguous"):
            out.result = verdict
            return out
        if expires:
            return _expire(out, f"a retry after attempt {n} would go out after the deadline {_iso(deadline)}")
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


def _expire(out: Result, note: str) -> Result:
    """The deadline passed (or will before the next try can go): nothing more is
    sent. 'expired' claims that nothing landed, so it is only used when no
    earlier try may have; otherwise 'ambiguous' and a human checks."""
    out.result = "ambiguous" if any(a.delivered == "maybe" for a in out.attempts) else "expired"
    out.note = note
    log.warning("order not sent: %s (%s)", note, out.result)
    return out


def _iso(deadline: datetime | None) -> str:
    return "" if deadline is None else cme_time.iso_z(deadline)
