"""Hub integration rig: the real sandbox gateways, a real redis-server, the hub
in a thread (or a subprocess), and an independent aggregation of the sandbox's
own trades to compare against."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterator

import pytest
import redis

from multialpha import cme_time
from multialpha.config import Settings
from multialpha.contracts import ContractMap
from multialpha.keys import Keys

UTC = timezone.utc
MIN = cme_time.MINUTE_NS


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll an asynchronous result with a deadline (never sleeps to let feed time pass)."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- independent aggregation ----------------------------------------------------------------

BarKey = tuple[str, int]  # (root, minute start ns)
BarVal = tuple[float, float, float, float, int, int, str]  # o h l c volume trades contract


def _round(price_fixed: int, tick: float) -> float:
    t = Decimal(repr(tick))
    q = (Decimal(price_fixed) / Decimal(10**9) / t).to_integral_value(ROUND_HALF_UP)
    return float(q * t)


def expected_bars(market: Any, settings: Settings, roots: list[str], start_ns: int, end_ns: int) -> dict[BarKey, BarVal]:
    """Databento OHLCV-1m of the front contract, straight from the market's trades."""
    cmap = ContractMap.load(settings.path(settings.contract_map_path))
    out: dict[BarKey, BarVal] = {}
    for root in roots:
        tick = settings.instruments[root].tick_size
        trades = market.trades(root, start_ns, end_ns)
        acc: dict[int, list[Any]] = {}
        fronts: dict[date, set[int]] = {}
        for ts, iid, px, size in zip(
            trades["ts_recv"].tolist(), trades["instrument_id"].tolist(), trades["price"].tolist(), trades["size"].tolist()
        ):
            m = ts - ts % MIN
            acc.setdefault(m, []).append((iid, px, size))
        for m, rows in acc.items():
            day = cme_time.trading_day(m)
            if day not in fronts:
                raw = cmap.front(root, day).raw_symbol
                fronts[day] = {i for i, r in market.raw_symbols(root, day).items() if r == raw}
            mine = [(px, size) for iid, px, size in rows if iid in fronts[day]]
            if not mine:
                continue
            prices = [p for p, _ in mine]
            out[(root, m)] = (
                _round(prices[0], tick), _round(max(prices), tick), _round(min(prices), tick), _round(prices[-1], tick),
                sum(s for _, s in mine), len(mine), cmap.front(root, day).raw_symbol,
            )
    return out


def logged_bars(client: redis.Redis, keys: Keys, roots: list[str]) -> dict[BarKey, BarVal]:
    out: dict[BarKey, BarVal] = {}
    for root in roots:
        for entry_id, f in client.xrange(keys.bar_log(root)):
            start = cme_time.to_ns(cme_time.parse_iso(f["timestamp"]))
            assert int(entry_id.split("-")[0]) * 1_000_000 == start
            out[(root, start)] = (
                float(f["open"]), float(f["high"]), float(f["low"]), float(f["close"]),
                int(f["volume"]), int(f["trades"]), f["contract"],
            )
    return out


def last_per_root(bars: dict[BarKey, BarVal]) -> set[BarKey]:
    last: dict[str, int] = {}
    for root, m in bars:
        last[root] = max(last.get(root, m), m)
    return {(r, m) for r, m in last.items()}


def assert_complete(got: dict[BarKey, BarVal], want: dict[BarKey, BarVal]) -> None:
    """Every expected bar is published and equal; only each root's final (still open) minute may be missing."""
    extra = set(got) - set(want)
    assert not extra, f"unexpected bars: {sorted(extra)[:5]}"
    wrong = [(k, got[k], want[k]) for k in got if got[k] != want[k]]
    assert not wrong, f"{len(wrong)} bars differ, e.g. {wrong[:3]}"
    missing = set(want) - set(got) - last_per_root(want)
    assert not missing, f"{len(missing)} bars missing, e.g. {sorted(missing)[:5]}"


# -- pub/sub recorder ---------------------------------------------------------------------------


class Recorder:
    """Every bar message published on the market channels, to spot duplicates."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(keys.bars_pattern())
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(timeout=0.05)
            if msg and msg["type"] == "pmessage":
                self.messages.append(json.loads(msg["data"]))

    def keys(self) -> list[tuple[str, str]]:
        return [(m["symbol"], m["timestamp"]) for m in self.messages]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.pubsub.close()


# -- the hub in a thread ---------------------------------------------------------------------------


@dataclass
class HubThread:
    hub: Any
    thread: threading.Thread
    stop_event: threading.Event
    result: list[int]

    def stop(self, timeout: float = 5.0) -> int:
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "hub did not stop"
        return self.result[0]


def start_hub(settings: Settings) -> HubThread:
    from multialpha.hub.main import Hub

    stop = threading.Event()
    hub = Hub(settings, stop_event=stop)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(hub.run()), name="hub-under-test", daemon=True)
    t.start()
    return HubThread(hub, t, stop, result)


# Breakout (ES NQ RTY YM) + ibs_b (6B 6N 6S SI YM) and its hub-fed references (PL 6E 6J ZB).
HUB_ENV = {
    "MULTIALPHA__STRATEGIES__IBS_A__ENABLED": "false",
    "MULTIALPHA__HUB__SILENCE_TIMEOUT_S": "15",
    "MULTIALPHA__HUB__RECONNECT_INITIAL_S": "0.05",
    "MULTIALPHA__HUB__RECONNECT_CAP_S": "0.4",
}


@pytest.fixture
def hub_settings(settings_for) -> Callable[..., Settings]:
    def build(**env: str) -> Settings:
        return settings_for(**{**HUB_ENV, **env})

    return build


# The sandbox's speed 0 streams unpaced (every day, regardless of the clock). A
# clock that (practically) does not move on its own, advanced by set_clock,
# releases exactly the trades with ts_recv <= clock: the test drives feed time.
PINNED = 1e-9


@pytest.fixture
def sandbox_at() -> Iterator[Callable[..., Any]]:
    from multialpha.sandbox.server import Sandbox

    started: list[Any] = []

    def start(settings: Settings, when: datetime, from_date: date = date(2025, 12, 10)) -> Any:
        sb = Sandbox(settings, seed=7, speed=PINNED, from_date=from_date, days=5, start_at=when)
        sb.start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()
