"""Order-path test support: a real local HTTP receiver with scripted answers
and a controlled clock (shared by tests/orders and tests/portfolio)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

WEBHOOK_UUID = "0b6c2f1e-6a55-4b43-9d1c-3a2f5e8d7c10"
WEBHOOK_PASSWORD = "pw-Zq7Xv93Lk2Tt88"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    hang: bool = False  # hold the answer until the test ends (client read timeout)


class Receiver:
    """ThreadingHTTPServer on 127.0.0.1; answers from a script, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Reply] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "body": json.loads(raw)})
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                if reply.hang:
                    receiver.release.wait(10)
                body = reply.body or json.dumps({"success": reply.status < 300, "id": "x", "logId": "y",
                                                 "payload": {}})
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body.encode())
                except OSError:
                    pass  # client gave up (timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/trading/webhook/{WEBHOOK_UUID}/{WEBHOOK_PASSWORD}"

    def order_ids(self) -> list[str]:
        with self.lock:
            return [r["body"]["extras"]["orderId"] for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Clock:
    """Controlled UTC clock; `sleep` advances it and records the delay."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        with self._lock:
            self.now = when

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


@pytest.fixture
def clock() -> Clock:
    # Wednesday 2025-12-10 15:30 UTC (09:30 CT): mid-session, trading day 2025-12-10.
    return Clock(datetime(2025, 12, 10, 15, 30, tzinfo=timezone.utc))


def intent(strategy: str = "breakout", symbol: str = "ES", side: str = "long", kind: str = "entry",
           bar_start: datetime | None = None, contract: str = "ESZ5", price: float = 6000.25,
           quantity: int = 1, **kw: Any):
    from multialpha.orders.intent import OrderIntent

    return OrderIntent(strategy=strategy, symbol=symbol, side=side, kind=kind, quantity=quantity,  # type: ignore[arg-type]
                       price=price, bar_start=bar_start or datetime(2025, 12, 10, 15, 29, tzinfo=timezone.utc),
                       contract=contract, **kw)


# The shipped config's webhook variables: breakout has its own (it shares YM with ibs_b).
WEBHOOK_ENVS = ("TRADERSPOST_WEBHOOK_URL", "TRADERSPOST_WEBHOOK_URL_BREAKOUT")


def webhook_env(url: str) -> dict[str, str]:
    """A router's environment: breakout's webhook is ``url``; the IBS strategies' is another one
    (two strategies trading YM through one webhook is a config error)."""
    return {WEBHOOK_ENVS[0]: url + "-ibs", WEBHOOK_ENVS[1]: url}


def live_settings(settings_for: Any, **env: str):
    """Settings with orders.mode live and fast, bounded retries. Live mode needs every webhook
    variable at load (a config check); the routers get the receiver's URL in their own environ."""
    placeholders = {WEBHOOK_ENVS[0]: "https://example.invalid/a", WEBHOOK_ENVS[1]: "https://example.invalid/b"}
    return settings_for(MULTIALPHA__ORDERS__MODE="live", MULTIALPHA__ORDERS__TIMEOUT_S="0.3",
                        MULTIALPHA__ORDERS__MAX_ATTEMPTS="4", **{**placeholders, **env})
