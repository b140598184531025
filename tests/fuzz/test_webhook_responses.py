"""Webhook responses (multialpha/orders/sender.py): whatever TradersPost (or anything at that URL)
answers, ``deliver`` returns a Result with a documented outcome and a sane retry schedule; it never
raises, never sleeps a negative/NaN/unbounded time, and never retries an entry that may have landed.

- ``retry_after`` (pure): any header value -> None or seconds in [0, MAX_RETRY_AFTER_S];
- ``deliver`` against a real loopback TCP server that answers each request with generated raw
  bytes: valid HTTP with any status/headers/body, truncated or garbage responses, resets.
"""

from __future__ import annotations

import math
import random
import socket
import threading
from datetime import datetime, timezone

import requests

from multialpha.config import OrdersSettings
from multialpha.orders import sender
from tests.fuzz.helpers import fuzz, random_bytes, random_text, seeded

NOW = datetime(2025, 12, 1, 15, 0, tzinfo=timezone.utc)
OUTCOMES = {"sent", "rejected", "failed", "ambiguous", "abandoned"}


def retry_after_value(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(["nan", "NaN", "inf", "-inf", "-1", "0", "1e999", "1e-999", "3601", " 5 ", "", "  ",
                           "Mon, 01 Dec 2025 15:00:30 GMT", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
                           "Mon, 01 Jan 0001 00:00:00 +0100", "Tue, 30 Feb 2025 00:00:00 GMT", "Mon, 01 Dec 2025 99:99:99 GMT",
                           "Mon, 01 Dec 2025 15:00:30 -9999", "1_0", "0x10", "١٢"])
    if roll < 0.6:
        return str(rng.choice((rng.uniform(-1e6, 1e6), rng.randint(-(2**70), 2**70), rng.random())))
    if roll < 0.8:  # dates, some malformed
        parts = [rng.choice(["Mon,", "Xyz,", ""]), str(rng.randint(-5, 40)), rng.choice(["Dec", "Foo", "Jan"]),
                 str(rng.randint(-1, 10000)), f"{rng.randint(0, 30)}:{rng.randint(0, 70)}:{rng.randint(0, 70)}",
                 rng.choice(["GMT", "+0000", "-2400", "+9999", "EST", ""])]
        return " ".join(parts)
    return random_text(rng, 40)


def _sane_delay(inp, out) -> None:
    assert out is None or (isinstance(out, float) and math.isfinite(out) and 0.0 <= out <= sender.MAX_RETRY_AFTER_S), out


def test_retry_after_is_none_or_bounded_seconds():
    counts = fuzz(seeded(retry_after_value), lambda v: sender.retry_after(v, NOW), (), 8_000, _sane_delay)
    assert counts["ok"] >= 8_000


def test_retry_after_regressions():
    for value in ("nan", "NaN", "-nan"):
        assert sender.retry_after(value, NOW) is None, value
    assert sender.retry_after("inf", NOW) == sender.MAX_RETRY_AFTER_S
    assert sender.retry_after("Mon, 01 Dec 2025 15:00:30 GMT", NOW) == 30.0


class RawServer:
    """Loopback TCP server: reads one request, answers ``self.response`` raw, closes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.response = b""
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")), 0)
                    while len(body) < length:
                        body += conn.recv(65536)
                    self.requests += 1
                    if self.response == b"RST":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    else:
                        conn.sendall(self.response)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def http_response(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return b"RST"  # connection reset after the request went out
    if roll < 0.12:
        return random_bytes(rng, 200)  # not HTTP at all
    status = rng.choice((200, 201, 204, 301, 302, 400, 401, 403, 404, 408, 409, 422, 429, 429, 429, 500, 502, 503,
                         504, rng.randint(100, 999), rng.randint(0, 99)))
    reason = rng.choice((b"OK", b"", b"Too Many Requests", random_text(rng, 20).encode("utf-8", "surrogatepass")))
    body = rng.choice((b"", b'{"ok":true}', random_bytes(rng, 400), random_text(rng, 400).encode("utf-8", "surrogatepass"),
                       b"https://hooks.example/secret " * 5))
    headers = [b"Connection: close"]
    if rng.random() < 0.6:
        headers.append(b"Retry-After: " + retry_after_value(rng).encode("utf-8", "surrogatepass"))
    if rng.random() < 0.7:
        n = len(body) if rng.random() < 0.8 else rng.choice((0, len(body) + 50, -1))
        headers.append(b"Content-Length: " + str(n).encode())
    if rng.random() < 0.1:
        headers.append(b"Content-Type: text/plain; charset=" + rng.choice((b"utf-8", b"latin-1", b"nope")))
    if rng.random() < 0.05:
        headers.append(b"X-Long: " + b"a" * 70_000)
    if rng.random() < 0.05:
        headers.append(b"Transfer-Encoding: chunked")
    raw = b"HTTP/1.1 " + str(status).encode() + b" " + reason + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body
    if rng.random() < 0.05:
        raw = raw[: rng.randrange(len(raw))]  # truncated mid-response
    return raw


def test_deliver_any_response_yields_a_documented_result():
    server = RawServer()
    policy = OrdersSettings(timeout_s=2.0, max_attempts=2, backoff_initial_s=0.5, backoff_max_s=30.0)
    session = requests.Session()
    slept: list[float] = []

    def deliver(case):
        response, idempotent = case
        server.response = response
        slept.clear()
        return sender.deliver(session, server.url, b'{"ticker":"ES"}', policy, idempotent=idempotent,
                              clock=lambda: NOW, sleep=slept.append, rand=lambda: 0.5)

    def check(case, res) -> None:
        response, idempotent = case
        assert res.result in OUTCOMES and 1 <= len(res.attempts) <= policy.max_attempts
        for d in slept:
            assert math.isfinite(d) and 0 <= d <= sender.MAX_RETRY_AFTER_S
        for a in res.attempts[:-1]:  # a retry only after "not delivered" (or any failure of an exit)
            assert a.delivered == "no" or idempotent
        if res.result == "sent":
            assert res.attempts[-1].status is not None and 200 <= res.attempts[-1].status < 300
        if not idempotent:  # an entry that may have landed is never sent again
            assert all(a.delivered != "maybe" for a in res.attempts[:-1])

    try:
        counts = fuzz(seeded(lambda r: (http_response(r), r.random() < 0.5)), deliver, (), 4_000, check)
    finally:
        server.close()
        session.close()
    print(f"\nwebhook responses: {counts['ok']} deliveries, {server.requests} HTTP requests served")
    assert counts["ok"] >= 4_000 and server.requests >= 4_000
